"""dmr_client's PEP 517 build backend: the standard library only, so `pip install .` needs nothing
from PyPI (no setuptools, no wheel), with or without --no-build-isolation, on Python 3.8 and later.

pyproject.toml names it (``build-backend = "build_backend"``, ``backend-path = ["tools"]``).  It
builds the one wheel the project has, py3-none-any, holding dmr_client.py, from the metadata in
setup.cfg, the same files and METADATA setuptools wrote from it: name, version (dmr_client's
``__version__``, read from the source without importing it), summary, the README as description,
license and LICENSE, keywords, classifiers, python_requires and the ``dmr-client`` console
script.  Also an sdist (that this backend builds again) and PEP 660 editable wheels (a .pth file
pointing at the checkout).  Timestamps come from SOURCE_DATE_EPOCH when it is set.
"""

from __future__ import annotations

import ast
import base64
import configparser
import gzip
import hashlib
import io
import os
import re
import tarfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = "py3-none-any"
#: What the sdist holds: enough to build the wheel again with this backend.
SDIST_FILES = ("LICENSE", "README.md", "dmr_client.py", "pyproject.toml", "setup.cfg", "tools/build_backend.py")


class Project:
    """The metadata of setup.cfg, and the files it names."""

    def __init__(self, root: str = ROOT):
        self.root = root
        config = configparser.ConfigParser(interpolation=None)
        with open(self.path("setup.cfg"), encoding="utf-8") as f:
            config.read_file(f)
        metadata, options = config["metadata"], config["options"]
        self.name = metadata["name"]
        self.modules = lines(options["py_modules"])
        self.version = self.attr(metadata["version"])
        self.summary = metadata.get("description", "")
        self.readme = self.file(metadata.get("long_description", ""))
        self.readme_type = metadata.get("long_description_content_type", "")
        self.license = metadata.get("license", "")
        self.license_files = lines(metadata.get("license_files", ""))
        self.keywords = [word.strip() for word in metadata.get("keywords", "").split(",") if word.strip()]
        self.classifiers = lines(metadata.get("classifiers", ""))
        self.requires_python = options.get("python_requires", "")
        self.scripts = {}
        if config.has_section("options.entry_points"):
            for line in lines(config["options.entry_points"].get("console_scripts", "")):
                script, _, target = line.partition("=")
                self.scripts[script.strip()] = target.strip()
        # Wheel and sdist names use the normalized name (PEP 427, PEP 625): dmr_client-0.1.0.
        self.stem = "%s-%s" % (re.sub(r"[-_.]+", "_", self.name).lower(), self.version)

    def path(self, name: str) -> str:
        return os.path.join(self.root, *name.split("/"))

    def read(self, name: str) -> bytes:
        with open(self.path(name), "rb") as f:
            return f.read()

    def attr(self, value: str) -> str:
        """``attr: module.__version__``: the string assigned in the module's source, not imported."""
        if not value.startswith("attr:"):
            return value.strip()
        module, _, name = value[len("attr:"):].strip().rpartition(".")
        tree = ast.parse(self.read(module.replace(".", "/") + ".py"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                return ast.literal_eval(node.value)
        raise ValueError("setup.cfg: %s assigns no %s" % (module, name))

    def file(self, value: str) -> str:
        if not value.startswith("file:"):
            return value
        return self.read(value[len("file:"):].strip()).decode("utf-8")

    def metadata(self) -> bytes:
        """METADATA (and the sdist's PKG-INFO), core metadata 2.4, as setuptools writes it."""
        fields = [("Metadata-Version", "2.4"), ("Name", self.name), ("Version", self.version)]
        if self.summary:
            fields.append(("Summary", self.summary))
        if self.license:
            fields.append(("License", self.license))
        if self.keywords:
            fields.append(("Keywords", ",".join(self.keywords)))
        fields += [("Classifier", classifier) for classifier in self.classifiers]
        if self.requires_python:
            fields.append(("Requires-Python", self.requires_python))
        if self.readme_type:
            fields.append(("Description-Content-Type", self.readme_type))
        fields += [("License-File", os.path.basename(name)) for name in self.license_files]
        for key, value in fields:
            if "\n" in value or "\r" in value:
                raise ValueError("setup.cfg: %s holds a line break" % key)
        head = "".join("%s: %s\n" % field for field in fields)
        return (head + "\n" + self.readme).encode("utf-8") if self.readme else head.encode("utf-8")

    def dist_info(self) -> dict:
        """The .dist-info files but RECORD, by their path in the wheel."""
        folder = self.stem + ".dist-info/"
        files = {folder + "licenses/" + os.path.basename(name): self.read(name) for name in self.license_files}
        files[folder + "METADATA"] = self.metadata()
        files[folder + "WHEEL"] = ("Wheel-Version: 1.0\nGenerator: dmr_client tools/build_backend.py\n"
                                   "Root-Is-Purelib: true\nTag: %s\n\n" % TAG).encode()
        if self.scripts:
            files[folder + "entry_points.txt"] = ("[console_scripts]\n" + "".join(
                "%s = %s\n" % item for item in self.scripts.items())).encode()
        files[folder + "top_level.txt"] = "".join(module + "\n" for module in self.modules).encode()
        return files


def lines(value: str) -> list:
    return [line.strip() for line in value.splitlines() if line.strip()]


def _timestamp() -> float:
    return float(os.environ.get("SOURCE_DATE_EPOCH") or time.time())


def _write_wheel(directory: str, project: Project, contents: dict) -> str:
    """contents (path -> bytes) and the dist-info as a wheel in *directory*, RECORD last."""
    name = "%s-%s.whl" % (project.stem, TAG)
    files = dict(contents)
    files.update(project.dist_info())
    record_path = project.stem + ".dist-info/RECORD"
    record = io.StringIO()
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.write("%s,sha256=%s,%d\n" % (path, digest, len(data)))
    record.write("%s,,\n" % record_path)
    files[record_path] = record.getvalue().encode()
    stamp = time.gmtime(max(_timestamp(), 315532800))[:6]   # zip dates start in 1980
    with zipfile.ZipFile(os.path.join(directory, name), "w", zipfile.ZIP_DEFLATED) as wheel:
        for path, data in files.items():
            info = zipfile.ZipInfo(path, stamp)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
    return name


def _write_dist_info(directory: str, project: Project) -> str:
    for path, data in project.dist_info().items():
        target = os.path.join(directory, *path.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(data)
    return project.stem + ".dist-info"


# PEP 517 and PEP 660 hooks -------------------------------------------------------------------


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    return _write_dist_info(metadata_directory, Project())


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    return _write_dist_info(metadata_directory, Project())


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = Project()
    return _write_wheel(wheel_directory, project, {module + ".py": project.read(module + ".py")
                                                   for module in project.modules})


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """A wheel whose .pth file puts the checkout on sys.path: edits take effect without reinstalling."""
    project = Project()
    pth = {re.sub(r"[-.]+", "_", project.name) + ".pth": (project.root + "\n").encode()}
    return _write_wheel(wheel_directory, project, pth)


def build_sdist(sdist_directory, config_settings=None):
    project = Project()
    name = project.stem + ".tar.gz"
    mtime = int(_timestamp())

    def add(tar: tarfile.TarFile, path: str, data: bytes) -> None:
        info = tarfile.TarInfo(project.stem + "/" + path)
        info.size, info.mtime, info.mode = len(data), mtime, 0o644
        tar.addfile(info, io.BytesIO(data))

    with open(os.path.join(sdist_directory, name), "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=mtime, filename="") as zipped, \
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add(tar, "PKG-INFO", project.metadata())
        for path in SDIST_FILES:
            add(tar, path, project.read(path))
    return name
