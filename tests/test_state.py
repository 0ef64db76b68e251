"""The state file: exact per-build records, compact runs, atomic writes, one agent at a time."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from agent.state import JobState, SentRuns, StateError, StateFile


def test_runs_merge_and_stay_compact() -> None:
    runs = SentRuns()
    for n in [3, 1, 2, 5, 4]:
        runs.add(n, n * 1000)
    assert runs.runs == [[1, 5, 1000, 5000]]
    assert runs.contains(3, 3000)
    assert not runs.contains(6, 6000)
    assert runs.count() == 5


def test_a_gap_stays_unsent_until_filled() -> None:
    runs = SentRuns()
    for n in [40, 42, 43]:
        runs.add(n, n * 1000)
    assert not runs.contains(41, 41_000)  # the build that was still running
    runs.add(41, 41_000)
    assert runs.runs == [[40, 43, 40_000, 43_000]]


def test_same_number_other_start_time_is_another_build() -> None:
    runs = SentRuns()
    for n in range(1, 51):
        runs.add(n, n * 1000)
    assert not runs.contains(3, 99_000)  # job recreated: #3 again, started later
    runs.add(3, 99_000)
    assert runs.contains(3, 99_000)
    assert not runs.contains(4, 4000)  # the deleted job's runs were dropped
    assert runs.runs == [[3, 3, 99_000, 99_000]]


def test_hundred_thousand_contiguous_builds_stay_tiny(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with StateFile(path) as state:
        job = state.jobs("guid")["big"] = JobState()
        for n in range(1, 100_001):
            job.sent.add(n, 1_600_000_000_000 + n)
        state.save()
    assert path.stat().st_size < 1024
    with StateFile(path) as state:
        assert state.jobs("guid")["big"].sent.count() == 100_000


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "s" / "state.json"
    with StateFile(path) as state:
        job = state.jobs("guid", "http://jenkins/")["a/b"] = JobState(floor_ms=5)
        job.sent.add(1, 10)
        job.open.add(2)
        job.dead[3] = {"start_time": 30, "status": 400, "message": "no", "at": "x"}
        job.anchor = (3, 30)
        state.save()
    with StateFile(path) as state:
        again = state.jobs("guid")["a/b"]
    assert again.to_json() == job.to_json()
    assert again.is_dead(3, 30) and not again.is_dead(3, 31)


def test_second_agent_on_the_same_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with StateFile(path), pytest.raises(StateError, match="in use by another agent"):
        StateFile(path).open()
    with StateFile(path):
        pass  # released when the first one closed


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '{"version": 99, "controllers": {}}',
        '{"version": 1}',
        "[1,2]",
        "\x00\x01",
        "[" * 100_000 + "]" * 100_000,  # nested too deep for the parser
    ],
)
def test_corrupt_file_is_named_and_left_untouched(tmp_path: Path, content: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    before = path.read_bytes()
    with pytest.raises(StateError, match=str(path)):
        StateFile(path).open()
    assert path.read_bytes() == before
    with StateFile(path.with_name("other.json")):
        pass  # the lock of the failed open was released


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with StateFile(path) as state:
        state.jobs("g")["j"] = JobState()
        state.save()
        state.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.lock"]
    assert json.loads(path.read_text())["version"] == 1


def test_state_path_under_a_file_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(StateError, match="not-a-folder"):
        StateFile(blocker / "state.json").open()


def test_temporary_files_of_a_crashed_save_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    (tmp_path / ".state.json.4242.tmp").write_text('{"half": ')
    (tmp_path / "unrelated.tmp").write_text("kept")
    with StateFile(path):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json.lock", "unrelated.tmp"]


def test_an_empty_file_is_an_empty_state(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("")
    with StateFile(path) as state:
        assert state.controllers() == {}


def test_one_unreadable_job_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json"
    good = {"sent": [[1, 2, 10, 20]], "anchor": [2, 20]}
    bad = {"sent": [[1, 2, 10, 20]], "anchor": [2, None]}  # what an old agent could write
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "controllers": {
                    "g": {"url": None, "jobs": {"good": good, "bad": bad, "worse": {"sent": "x"}}}
                },
            }
        )
    )
    with caplog.at_level("WARNING"), StateFile(path) as state:
        jobs = state.jobs("g")
    assert list(jobs) == ["good"]
    assert jobs["good"].anchor == (2, 20)
    assert "job bad is unreadable" in caplog.text and "job worse is unreadable" in caplog.text


def test_an_anchor_without_a_start_time_is_never_written(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with StateFile(path) as state:
        state.jobs("g")["j"] = JobState(anchor=(3, None))  # type: ignore[arg-type]
        state.save()
    with StateFile(path) as state:
        assert state.jobs("g")["j"].anchor is None


def test_a_job_name_no_utf8_file_can_hold_is_written_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    odd = "team/\udcffbuild"  # a lone surrogate, as a mangled name can arrive
    with StateFile(path) as state:
        state.jobs("g")[odd] = JobState(anchor=(1, 10))
        state.save()
    with StateFile(path) as state:
        assert state.jobs("g")[odd].anchor == (1, 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.lock"]


def test_read_only_needs_no_lock_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with StateFile(path) as held:
        held.jobs("g")["j"] = JobState(anchor=(1, 10))
        held.save()
        with StateFile(path, read_only=True) as reader:  # beside the agent holding the lock
            assert reader.jobs("g")["j"].anchor == (1, 10)
            with pytest.raises(StateError, match="read only"):
                reader.save()


def test_files_are_0600_and_folders_0700_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "made" / "here" / "state.json"
    old = os.umask(0)
    try:
        with StateFile(path) as state:
            state.jobs("g")["j"] = JobState()
            state.save()
    finally:
        os.umask(old)
    modes = {
        p.name: stat.S_IMODE(p.stat().st_mode) for p in (path, path.parent, path.parent.parent)
    }
    assert modes == {"state.json": 0o600, "here": 0o700, "made": 0o700}
    assert stat.S_IMODE(Path(f"{path}.lock").stat().st_mode) == 0o600


def test_a_folder_anyone_may_write_is_refused_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o1777)  # sticky or not: anyone may plant a name there
    with pytest.raises(StateError, match=rf"{folder}, the folder of the state file.*o-w"):
        StateFile(folder / "state.json").open()
    with pytest.raises(StateError, match="may be written by any user"):
        StateFile(folder / "state.json").probe()
    assert list(folder.iterdir()) == []  # not even a lock file


def test_a_symlink_planted_at_the_old_temporary_name_is_never_written_through(
    tmp_path: Path,
) -> None:
    """The old temporary name was predictable (pid): a symlink there aimed the write."""
    victim = tmp_path / "victim"
    victim.write_text("root's own")
    path = tmp_path / "state.json"
    with StateFile(path) as state:
        # planted while the agent runs (leftovers are removed when it opens the file)
        (tmp_path / f".state.json.{os.getpid()}.tmp").symlink_to(victim)
        state.jobs("g")["j"] = JobState()
        state.save()
    assert victim.read_text() == "root's own"
    assert json.loads(path.read_text())["version"] == 1


def test_two_agents_reaching_one_file_through_a_symlink_take_one_lock(tmp_path: Path) -> None:
    real = tmp_path / "real" / "state.json"
    real.parent.mkdir()
    alias = tmp_path / "alias.json"
    alias.symlink_to(real)
    with StateFile(real), pytest.raises(StateError, match="in use by another agent"):
        StateFile(alias).open()
    with StateFile(alias) as state:
        state.jobs("g")["j"] = JobState()
        state.save()
    assert alias.is_symlink() and "j" in real.read_text()  # written where the link points


def test_lanes_save_one_file_each_serialising_only_its_own_section(tmp_path: Path) -> None:
    """`run` serves each controller on its own thread, all saving one file: a snapshot never
    reads another lane's section while it changes, and the file written last is the newest."""
    path = tmp_path / "state.json"
    failures: list[BaseException] = []

    def lane(state: StateFile, guid: str) -> None:
        try:
            jobs = state.jobs(guid)
            for n in range(1, 1501):
                job = jobs.setdefault(f"job-{n % 300}", JobState())
                job.sent.add(n, n)
                job.changed()
                if n % 25 == 0:
                    state.write(state.snapshot(reuse=True, controller=guid))
        except BaseException as exc:
            failures.append(exc)

    with StateFile(path) as state:
        lanes = [threading.Thread(target=lane, args=(state, g)) for g in ("a", "b", "c")]
        for thread in lanes:
            thread.start()
        for thread in lanes:
            thread.join()
    assert failures == []
    with StateFile(path, read_only=True) as state:
        assert {g: sum(j.sent.count() for j in state.jobs(g).values()) for g in "abc"} == {
            g: 1500 for g in "abc"
        }
