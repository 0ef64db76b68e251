"""The state file: every controller's job records, in one locked JSON file.

The file is written atomically (temporary file, fsync, rename) and locked for the lifetime of
the process, so two agents can never interleave their writes.

No one else can steer the writes: the file is used where its path resolves to, so two agents
reaching it through a symlink take one lock; a folder that others may write to is refused (they
could plant a symlink where the file or the lock goes); temporary files are made by `mkstemp`
(O_EXCL: never through a planted symlink); files are 0600 and folders made here 0700 whatever
the umask.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from agent.state.records import JobState, dumps

FORMAT_VERSION = 1

log = logging.getLogger(__name__)


class StateError(Exception):
    """The state file cannot be used; the message names it. The file is left untouched."""


class StateFile:
    """The locked state file of one agent; `jobs(controller)` is that controller's section."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """`read_only`: read what is there, without a folder to create, a lock to take (a running
        service may hold it) or anything to write: `--dry-run`, `state show`, `check`."""
        self.path = path
        self.read_only = read_only
        self._real = path.resolve()  # the file itself: where it is locked and written
        self._lock = FileLock(str(self._real) + ".lock", timeout=0, mode=0o600)
        self._controllers: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, str] = {}  # job name -> its JSON string, for `snapshot`
        # `run` serves each controller on a thread of its own, all saving this one file: each
        # serialises only its own section (`snapshot(controller=)`), never another's while that
        # one changes; the others' texts are as they last serialised them.
        self._guard = threading.Lock()
        self._sections: dict[str, str] = {}
        self._newest: str | None = None  # the latest snapshot: what `write` puts on disk
        self._writing = threading.Lock()

    def __enter__(self) -> StateFile:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        if self.read_only:
            self._controllers = self._load()
            return
        try:
            _make_folder(self._real.parent)
        except OSError as exc:
            raise StateError(f"cannot create the folder of state file {self.path}: {exc}") from None
        _refuse_shared(self.path.parent, self._real.parent)
        try:
            self._lock.acquire()
        except Timeout:
            raise StateError(
                f"state file {self.path} is in use by another agent (lock {self.path}.lock)"
            ) from None
        except OSError as exc:
            raise StateError(f"cannot lock state file {self.path}: {exc}") from None
        try:
            self._controllers = self._load()
        except BaseException:
            self._lock.release()
            raise
        self._sections = {}
        # A crash inside save() leaves its temporary file behind; holding the lock, no other
        # agent can be writing one now.
        for leftover in self._real.parent.glob(f".{self._real.name}.*.tmp"):
            leftover.unlink(missing_ok=True)

    def probe(self) -> bool:
        """Whether `open` could take the file now (False: another agent holds it); StateError
        when its folder cannot be created or written. Writes nothing but the lock file, and
        creates no folder."""
        folder = self.path.parent
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise StateError(
                f"cannot create or write the folder of state file {self.path}: {existing} is "
                "not a writable folder"
            )
        if existing != folder:
            return True  # open() creates the folder, and nobody can hold a lock in it yet
        _refuse_shared(folder, self._real.parent)
        try:
            self._lock.acquire()
        except Timeout:
            return False
        except OSError as exc:
            raise StateError(f"cannot lock state file {self.path}: {exc}") from None
        self._lock.release()
        return True

    def close(self) -> None:
        if self._lock.is_locked:
            self._lock.release()

    def _load(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        if not self.path.is_file():
            raise StateError(f"state file {self.path} is not a file; fix or move it away")
        problem = f"state file {self.path} is unreadable or corrupt"
        try:
            text = self.path.read_text(encoding="utf-8")
            if not text.strip():
                return {}  # created but never written (a disk that filled up, a `touch`)
            data = json.loads(text)
        except (OSError, ValueError, RecursionError) as exc:
            raise StateError(
                f"{problem} ({type(exc).__name__}: {exc}); fix or move it away, "
                "the agent does not overwrite it"
            ) from None
        advice = "; fix or move it away, the agent does not overwrite it"
        return _parse(data, str(self.path), problem, advice)

    def jobs(self, controller: str, url: str | None = None) -> dict[str, JobState]:
        with self._guard:
            section = self._controllers.get(controller)
            if section is None:
                section = self._controllers[controller] = {"url": url, "jobs": {}}
                self._sections[controller] = self._section(section, reuse=False)  # empty yet
            if url:
                section["url"] = url
        jobs: dict[str, JobState] = section["jobs"]
        return jobs

    def controllers(self) -> dict[str, str | None]:
        """Every section: instance GUID -> the Jenkins URL it was last used with."""
        return {key: section.get("url") for key, section in sorted(self._controllers.items())}

    def remove(self, controller: str) -> None:
        """Drop one controller's section (nothing is written until `save`)."""
        with self._guard:
            self._controllers.pop(controller, None)
            self._sections.pop(controller, None)

    def to_json(self) -> dict[str, Any]:
        """The whole state as it is written to the file, for `save` and for export."""
        return {
            "version": FORMAT_VERSION,
            "controllers": {
                key: {
                    "url": section.get("url"),
                    "jobs": {name: job.to_json() for name, job in sorted(section["jobs"].items())},
                }
                for key, section in sorted(self._controllers.items())
            },
        }

    def replace(self, data: Any, source: str) -> None:
        """Take the state exported to `source` instead of this one (nothing written until `save`).

        Raises StateError naming `source` when it is not a state export; this state is then kept.
        """
        controllers = _parse(data, source, f"{source} is not a state export", "")
        with self._guard:
            self._controllers, self._sections = controllers, {}

    def save(self) -> None:
        """Write atomically: a crash leaves either the old file or the new one, never half."""
        self.write(self.snapshot())

    def snapshot(self, *, reuse: bool = False, controller: str | None = None) -> str:
        """The file's text now (the same as `to_json` serialised); `write` may then put it on
        disk from another thread.

        With `reuse`, a job's text from the previous snapshot is used again unless the job was
        marked `changed()` since, so that frequent saves during a run cost what changed rather
        than the whole file (14 ms for 5,000 jobs, every few builds). With `controller`, only
        that section is serialised now: the caller's thread is the only one changing it.
        """
        with self._guard:
            for key, section in self._controllers.items():
                if controller is None or key == controller or key not in self._sections:
                    self._sections[key] = self._section(section, reuse)
            sections = ",".join(
                f"{dumps(key)}:{self._sections[key]}" for key in sorted(self._controllers)
            )
            text = f'{{"version":{FORMAT_VERSION},"controllers":{{{sections}}}}}\n'
            self._newest = text
            return text

    def _section(self, section: dict[str, Any], reuse: bool) -> str:
        jobs = ",".join(
            f"{self._key(name)}:{job.text(reuse=reuse)}"
            for name, job in sorted(section["jobs"].items())
        )
        return f'{{"url":{dumps(section.get("url"))},"jobs":{{{jobs}}}}}'

    def _key(self, name: str) -> str:
        key = self._keys.get(name)
        if key is None:
            key = self._keys[name] = dumps(name)
        return key

    def write(self, text: str) -> None:
        """Put the newest snapshot on disk: `text`, or a later one another thread took (an
        older one written last would take back that thread's records)."""
        if self.read_only:
            raise StateError(f"state file {self.path} was opened to be read only")
        with self._writing:
            self._write(self._newest or text)

    def _write(self, text: str) -> None:
        try:
            write_atomically(self._real, text, 0o600)
        except OSError as exc:
            raise StateError(f"cannot write state file {self.path}: {exc}") from None


def write_atomically(path: Path, text: str, mode: int) -> None:
    """`text` in `path`, whole or not at all, whatever happens when: written to a temporary
    file that mkstemp made in the same folder (O_EXCL, a name no one can guess), with `mode`,
    synced, renamed over `path`, and the folder synced. OSError when it could not be."""
    tmp: Path | None = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        os.fchmod(fd, mode)
        with open(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _make_folder(folder: Path) -> None:
    """Create `folder` and its missing parents 0700, whatever the umask."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        made.mkdir(mode=0o700, exist_ok=True)
        os.chmod(made, 0o700)


def _refuse_shared(*folders: Path) -> None:
    """StateError when anyone may write to a folder of the state file: they could plant a
    symlink where it, its lock or its temporary file goes, and aim the agent's writes."""
    for folder in folders:
        try:
            mode = folder.stat().st_mode
        except OSError:
            continue  # not there yet: made 0700 by open()
        if mode & stat.S_IWOTH:
            raise StateError(
                f"{folder}, the folder of the state file, may be written by any user (mode "
                f"{stat.S_IMODE(mode):o}): refused; give AGENT_STATE_FILE a folder of its own, "
                f"or chmod o-w {folder}"
            )


def _parse(data: Any, where: str, problem: str, advice: str) -> dict[str, dict[str, Any]]:
    """The controllers of a state document; StateError `problem (why)advice` when it is not one.

    One job's entry that cannot be read is left out with a warning naming the job: the agent
    then treats the job as never seen, which at worst sends some builds again (SEI keeps the
    first write), rather than refusing every job's record.
    """
    try:
        if data.get("version") != FORMAT_VERSION:
            raise StateError(f"{problem}: unknown format version {data.get('version')!r}{advice}")
        controllers = {}
        for key, section in data["controllers"].items():
            jobs = {}
            for name, job in section["jobs"].items():
                try:
                    jobs[name] = JobState.from_json(job)
                except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
                    log.warning(
                        "%s: the record of job %s is unreadable (%s); the job is read afresh",
                        where,
                        name,
                        exc,
                    )
            controllers[key] = {"url": section.get("url"), "jobs": jobs}
        return controllers
    except StateError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise StateError(f"{problem} ({type(exc).__name__}: {exc}){advice}") from None
