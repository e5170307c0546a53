"""One atomic save: a process killed at any point of save_adapter leaves the old or the new adapter.

The save runs in a forked child that installs an audit hook (``sys.addaudithook``) counting every
file-system operation Python performs (open, mkdir, rename, remove, rmdir...) and sends itself
SIGKILL just before operation k; the parent then loads whatever the folder holds. Run for every k
until the save completes without being killed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys

import pytest
import torch

import samora
from samora.adapter_files import CONFIG_NAME, WEIGHTS_NAME
from tests.helpers import tiny_model, trained_samora

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")

FILE_SYSTEM_EVENTS = {
    "open",
    "os.rename",
    "os.remove",
    "os.rmdir",
    "os.mkdir",
    "os.chmod",
    "os.truncate",
    "os.link",
    "os.symlink",
    "os.listdir",
    "os.scandir",
    "shutil.rmtree",
    "shutil.move",
    "tempfile.mkstemp",
    "tempfile.mkdtemp",
}


def save_killed_before_operation(model, folder, k: int) -> bool:
    """Save in a forked child killed just before its k-th file-system operation; True if it was killed."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            count = 0

            def kill_at_k(event, args):
                nonlocal count
                if event in FILE_SYSTEM_EVENTS:
                    if count == k:
                        os.kill(os.getpid(), signal.SIGKILL)
                    count += 1

            sys.addaudithook(kill_at_k)
            samora.save_adapter(model, folder)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, "the save failed in the child without being killed"
    return False


def test_a_save_killed_at_any_operation_leaves_the_old_or_the_new_adapter(tmp_path, input_ids):
    old, new = trained_samora(seed=0), trained_samora(seed=1)
    logits = {which: model(input_ids, task_ids="b").logits for which, model in (("old", old), ("new", new))}
    pristine = tmp_path / "pristine"
    samora.save_adapter(old, pristine)
    (pristine / "trainer_state.json").write_text("{}")  # a foreign file (a Trainer checkpoint's) stays untouched
    samora.save_adapter(new, tmp_path / "warm-up")  # the child then imports nothing during its save
    seen, leftovers = [], {}
    for k in range(200):
        folder = tmp_path / f"kill-{k}"
        shutil.copytree(pristine, folder)
        killed = save_killed_before_operation(new, folder, k)
        try:
            found = samora.load_adapter(tiny_model(), folder)(input_ids, task_ids="b").logits
        except (OSError, ValueError) as err:
            pytest.fail(f"killed before file-system operation {k}: the folder holds neither adapter ({err})")
        which = next((w for w, expected in logits.items() if torch.equal(found, expected)), None)
        assert which is not None, f"killed before file-system operation {k}: the folder holds another adapter"
        assert (folder / "trainer_state.json").read_text() == "{}"
        seen.append(which)
        samora.save_adapter(trained_samora(seed=2), folder)  # a later save completes over whatever was left
        leftovers[k] = sorted({p.name for p in folder.iterdir()} - {CONFIG_NAME, WEIGHTS_NAME, "trainer_state.json"})
        if not killed:
            break
    else:
        pytest.fail("the save never completed within 200 file-system operations")
    assert seen[-1] == "new" and seen[0] == "old" and seen == sorted(seen, key=["old", "new"].index), seen
    assert len(seen) > 5  # the hook really saw the save's steps
    assert not any(leftovers.values()), f"a later save left the killed one's files behind: {leftovers}"


def test_a_save_committed_but_not_installed_is_read_from_its_pending_copy(tmp_path, input_ids):
    from samora.adapter_files import PENDING

    old, new = trained_samora(seed=0), trained_samora(seed=1)
    samora.save_adapter(old, tmp_path)
    samora.save_adapter(new, tmp_path / "other")
    (tmp_path / PENDING).mkdir()
    shutil.copy(tmp_path / "other" / WEIGHTS_NAME, tmp_path / WEIGHTS_NAME)  # the weights moved out, config not yet
    shutil.copy(tmp_path / "other" / CONFIG_NAME, tmp_path / PENDING / CONFIG_NAME)
    loaded = samora.load_adapter(tiny_model(), tmp_path)
    assert torch.equal(loaded(input_ids, task_ids="a").logits, new(input_ids, task_ids="a").logits)


def test_saves_from_several_processes_into_one_folder_take_turns(tmp_path, input_ids):
    """Every rank of a data-parallel script calling save_adapter on one folder (CI caught a rank's staging
    folder removed as abandoned by another rank's save): each save completes, the folder holds one of them."""
    models = [trained_samora(seed=seed) for seed in range(4)]
    samora.save_adapter(models[0], tmp_path / "warm-up")
    children = []
    for model in models:
        pid = os.fork()
        if pid == 0:  # a child: never returns into pytest
            code = 1
            try:
                for _ in range(5):
                    samora.save_adapter(model, tmp_path / "shared")
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    statuses = [os.waitpid(pid, 0)[1] for pid in children]
    assert all(os.WIFEXITED(s) and os.WEXITSTATUS(s) == 0 for s in statuses), "a concurrent save failed"
    found = samora.load_adapter(tiny_model(), tmp_path / "shared")(input_ids, task_ids="b").logits
    assert any(torch.equal(found, model(input_ids, task_ids="b").logits) for model in models)
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME])


def test_a_file_system_that_refuses_locks_still_saves_and_says_so(tmp_path, input_ids, monkeypatch, caplog):
    import errno
    import fcntl

    def refuse(handle, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    model = trained_samora(seed=0)
    monkeypatch.setattr(fcntl, "flock", refuse)
    samora.save_adapter(model, tmp_path)
    found = samora.load_adapter(tiny_model(), tmp_path)(input_ids, task_ids="b").logits
    assert torch.equal(found, model(input_ids, task_ids="b").logits)
    assert "concurrent saves into it are not serialised" in caplog.text


@pytest.mark.parametrize(
    "version,match",
    [
        (99, r"format_version 99, written by samora .*reads format_version 1 only. Upgrade samora"),
        (0, r"format_version 0 .*does not read"),
        ("1", r"format_version '1' .*does not read"),
        (None, r"format_version None .*does not read"),
    ],
)
def test_a_format_version_this_samora_does_not_read_is_refused(tmp_path, version, match):
    samora.save_adapter(trained_samora(seed=0), tmp_path)
    saved = json.loads((tmp_path / CONFIG_NAME).read_text())
    saved["format_version"] = version
    (tmp_path / CONFIG_NAME).write_text(json.dumps(saved))
    base = tiny_model()
    with pytest.raises(ValueError, match=match):
        samora.load_adapter(base, tmp_path)
    assert not hasattr(base, "samora_adapter")
