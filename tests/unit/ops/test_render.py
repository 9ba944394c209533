"""`make render`'s refusals, without an engine: it checks the stack and OUT before anything runs, and
deletes nothing it did not make. tests/engine/test_render.py renders for real.

Every test works on temporary folders (a copy of the project, a stand-in $HOME); the root folder is
only ever given to the pure check, never to render itself.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from ops.program_copy import copy_program
from ops.render import MARKER, RenderError, check_out, marker_text, render, replace_render
from tests.conftest import ROOT


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project with its stack files; $HOME is a folder of its own beside it."""
    copy = copy_program(tmp_path / "project", ROOT)
    for path in ROOT.glob("Pulumi.*.yaml"):
        shutil.copy2(path, copy / path.name)
    (copy / ".git").mkdir()
    (copy / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("# mine\n")
    monkeypatch.setenv("HOME", str(home))
    return copy


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (symlinks not followed) with its bytes."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink() and ".venv" not in path.parts
    }


def test_render_refuses_a_stack_without_a_stack_file_before_touching_out(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    out.mkdir()
    (out / MARKER).write_text(marker_text("prod", ["prod.yaml"]))
    (out / "prod.yaml").write_text("kind: Namespace\n")
    before = tree(out)

    with pytest.raises(
        RenderError, match=re.escape("STACK must be one of dev, prod, staging (a Pulumi.<stack>.yaml in")
    ):
        render("prdo", out, work_dir=project)

    assert tree(out) == before


def test_render_refuses_the_project_folder_given_as_dot_and_deletes_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    before = tree(project)

    with pytest.raises(
        RenderError,
        match=re.escape(
            "OUT must not be the project folder or one of its ancestors (name a new folder such as rendered/<stack>), "
            f"got '.' ({project}); nothing was deleted"
        ),
    ):
        render("prod", Path("."), work_dir=project)

    assert tree(project) == before


def test_render_refuses_an_ancestor_of_the_project_and_deletes_nothing(project: Path) -> None:
    before = tree(project.parent)

    with pytest.raises(RenderError, match=re.escape("OUT must not be the project folder or one of its ancestors")):
        render("prod", project.parent, work_dir=project)

    assert tree(project.parent) == before


def test_render_refuses_the_home_folder_and_deletes_nothing(project: Path) -> None:
    home = Path.home()
    before = tree(home)

    with pytest.raises(
        RenderError,
        match=re.escape(f"OUT must not be your home folder or one of its ancestors, got '{home}'; nothing was deleted"),
    ):
        render("prod", home, work_dir=project)

    assert tree(home) == before


def test_render_refuses_a_non_empty_folder_it_did_not_make_and_deletes_nothing(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "notes"
    out.mkdir()
    (out / "todo.txt").write_text("keep me\n")

    with pytest.raises(
        RenderError,
        match=re.escape(
            f"OUT must be a new or empty folder, or one that render wrote (it holds {MARKER}), "
            f"not a folder it did not make, got '{out}'; nothing was deleted"
        ),
    ):
        render("prod", out, work_dir=project)

    assert tree(out) == {"todo.txt": b"keep me\n"}


def test_render_refuses_a_file(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "manifest.yaml"
    out.write_text("kind: Namespace\n")

    with pytest.raises(
        RenderError, match=re.escape(f"OUT must be a folder, not a file, got '{out}'; nothing was deleted")
    ):
        render("prod", out, work_dir=project)

    assert out.read_text() == "kind: Namespace\n"


def test_out_check_refuses_the_root_folder() -> None:
    with pytest.raises(RenderError, match=re.escape("OUT must not be the root folder, got '/'; nothing was deleted")):
        check_out(Path("/"), protected=(), home=Path("/nonexistent-home"))


def test_out_check_refuses_the_real_project_by_default() -> None:
    with pytest.raises(RenderError, match=re.escape("OUT must not be the project folder or one of its ancestors")):
        check_out(ROOT / "components" / "..")


@pytest.mark.parametrize(
    "contents",
    [None, {}, {MARKER: marker_text("staging", ["1-manifest/ns.yaml"]), "1-manifest/ns.yaml": "kind: Namespace\n"}],
    ids=["missing", "empty", "rendered-before"],
)
def test_out_check_allows_a_new_an_empty_or_a_rendered_folder(tmp_path: Path, contents: dict[str, str] | None) -> None:
    out = tmp_path / "out"
    if contents is not None:
        out.mkdir()
        for name, text in contents.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_text(text)

    assert check_out(out, protected=(ROOT,), home=tmp_path / "home") == out.resolve()


def test_out_check_resolves_a_symlink_to_the_folder_it_names(project: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(project)

    with pytest.raises(RenderError, match=re.escape("OUT must not be the project folder or one of its ancestors")):
        check_out(link, protected=(project,), home=tmp_path / "home")


def rendered_folder(out: Path, files: dict[str, str], stack: str = "staging") -> None:
    """``out`` as a render leaves it: its files, and a marker that lists them."""
    out.mkdir()
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    (out / MARKER).write_text(marker_text(stack, files))


@pytest.mark.parametrize(
    ("later", "named"),
    [
        ({".git/HEAD": "ref: refs/heads/main\n"}, ".git/"),
        ({"notes.md": "mine\n"}, "notes.md"),
        ({"1-manifest/extra.yaml": "kind: Mine\n"}, "1-manifest/extra.yaml"),
    ],
    ids=["git-folder", "file-added-later", "file-beside-render-files"],
)
def test_render_refuses_a_rendered_folder_that_holds_what_render_did_not_write_and_deletes_nothing(
    project: Path, tmp_path: Path, later: dict[str, str], named: str
) -> None:
    out = tmp_path / "rendered"
    rendered_folder(out, {"1-manifest/ns.yaml": "kind: Namespace\n"})
    for name, text in later.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    before = tree(out)

    with pytest.raises(
        RenderError,
        match=re.escape(
            f"OUT must hold only the files render wrote (listed in its {MARKER}), got '{out}' holding {named}; "
            "nothing was deleted"
        ),
    ):
        render("prod", out, work_dir=project)

    assert tree(out) == before


def test_render_refuses_a_marker_that_lists_no_files_and_names_what_it_found(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    out.mkdir()
    (out / MARKER).write_text("Manifests of stack 'prod', written by `make render`\n")
    (out / "ns.yaml").write_text("kind: Namespace\n")
    before = tree(out)

    with pytest.raises(
        RenderError,
        match=re.escape(
            f"OUT must hold only the files render wrote (listed in its {MARKER}), got '{out}' holding ns.yaml; "
            "nothing was deleted"
        ),
    ):
        render("prod", out, work_dir=project)

    assert tree(out) == before


def test_out_check_names_at_most_a_few_of_the_unlisted_files(tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    rendered_folder(out, {})
    for number in range(12):
        (out / f"mine-{number:02}.txt").write_text("mine\n")

    with pytest.raises(
        RenderError, match=r"holding mine-00\.txt, mine-01\.txt, mine-02\.txt, mine-03\.txt, mine-04\.txt and 7 more; "
    ):
        check_out(out, protected=(ROOT,), home=tmp_path / "home")


def test_out_check_never_follows_a_listed_path_out_of_the_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    out = tmp_path / "rendered"
    rendered_folder(out, {"ns.yaml": "kind: Namespace\n"})
    (out / MARKER).write_text(marker_text("staging", ["ns.yaml", "../outside.txt"]))
    (out / "link.yaml").symlink_to(outside)

    with pytest.raises(RenderError, match=re.escape("holding link.yaml; nothing was deleted")):
        check_out(out, protected=(ROOT,), home=tmp_path / "home")


def test_marker_lists_the_files_render_wrote() -> None:
    assert json.loads(marker_text("prod", ["b/2.yaml", "a.yaml"]))["files"] == ["a.yaml", "b/2.yaml"]


def test_replacing_a_render_deletes_only_its_listed_files(tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    rendered_folder(out, {"1-manifest/ns.yaml": "kind: Namespace\n", "0-crd/x.yaml": "kind: X\n"})
    fresh = tmp_path / ".rendered.render-1"
    fresh.mkdir()
    (fresh / "1-manifest").mkdir()
    (fresh / "1-manifest" / "ns.yaml").write_text("kind: Namespace\nmetadata: {}\n")
    (fresh / MARKER).write_text(marker_text("prod", ["1-manifest/ns.yaml"]))

    replace_render(out, fresh)

    assert tree(out) == {
        MARKER: marker_text("prod", ["1-manifest/ns.yaml"]).encode(),
        "1-manifest/ns.yaml": b"kind: Namespace\nmetadata: {}\n",
    }
    assert sorted(path.name for path in tmp_path.iterdir()) == ["rendered"], "nothing is left beside OUT"


def test_replacing_a_render_that_gained_a_file_meanwhile_refuses_and_puts_it_back(tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    rendered_folder(out, {"ns.yaml": "kind: Namespace\n"})
    (out / "during-render.txt").write_text("mine\n")
    before = tree(out)
    fresh = tmp_path / ".rendered.render-1"
    fresh.mkdir()
    (fresh / MARKER).write_text(marker_text("prod", []))

    with pytest.raises(RenderError, match=re.escape(f"got '{out}' holding during-render.txt; nothing was deleted")):
        replace_render(out, fresh)

    assert tree(out) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == [".rendered.render-1", "rendered"]


def test_out_check_allows_the_empty_folders_a_render_listed(tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    rendered_folder(out, {"1-manifest/ns.yaml": "kind: Namespace\n"})
    (out / "0-crd").mkdir()
    (out / MARKER).write_text(marker_text("staging", ["1-manifest/ns.yaml"], ["0-crd", "1-manifest"]))

    assert check_out(out, protected=(ROOT,), home=tmp_path / "home") == out.resolve()
