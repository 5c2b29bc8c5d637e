"""Security checks as tests: servers bind 127.0.0.1 with a token, Ray stays local without a dashboard, nothing
untrusted is unpickled, and workspace export names cannot leave the workspace."""
from __future__ import annotations

import ast
import pickle
import re
import sys
import types
from pathlib import Path

import pytest

from worldengine_lab.errors import CorruptFileError, WorkspaceError
from worldengine_lab.logs.nuplan._pickle import loads_restricted
from worldengine_lab.store import Workspace

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "worldengine_lab"
# the one full unpickle: MTGS assets with an explicit, keyword-only trust=True (default False, logged warning)
TRUSTED_TORCH_LOADS = {("worldengine_lab/scene/mtgs.py", "_torch_load")}


def _calls(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func, owner = node.func, node
            while owner in parents and not isinstance(owner, (ast.FunctionDef, ast.AsyncFunctionDef)):
                owner = parents[owner]
            yield node, ast.unparse(func), getattr(owner, "name", "<module>")


def _library_files() -> list[Path]:
    return sorted(p for p in LIBRARY.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_torch_load_in_the_library_is_weights_only() -> None:
    unsafe = []
    for path in _library_files():
        rel = path.relative_to(REPO).as_posix()
        for call, name, owner in _calls(path):
            if not name.endswith("torch.load"):
                continue
            kw = {k.arg: k.value for k in call.keywords}
            ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
            if not ok and (rel, owner) not in TRUSTED_TORCH_LOADS:
                unsafe.append(f"{rel}:{call.lineno} in {owner}: {ast.unparse(call)}")
    assert not unsafe, "torch.load without weights_only=True:\n" + "\n".join(unsafe)


def test_the_full_unpickle_of_mtgs_assets_needs_an_explicit_trust_flag() -> None:
    import inspect

    from worldengine_lab.scene import mtgs

    sig = inspect.signature(mtgs.load_mtgs_asset)
    assert sig.parameters["trust"].kind is inspect.Parameter.KEYWORD_ONLY and sig.parameters["trust"].default is False
    src = inspect.getsource(mtgs._torch_load)
    assert re.search(r"if trust:\s*\n\s*log\.warning", src), "the trusted branch must warn before unpickling"
    callers = [f"{p.relative_to(REPO)}:{c.lineno}" for p in _library_files() + sorted((REPO / "widgets").glob("*.py"))
               for c, _, _ in _calls(p)
               if any(k.arg == "trust" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                      for k in c.keywords) and p.name != "mtgs.py"]
    assert not callers, f"library code passes trust= on to a full unpickle: {callers}"


def test_no_pickle_loads_on_files_except_the_restricted_unpickler() -> None:
    found = []
    for path in _library_files():
        rel = path.relative_to(REPO).as_posix()
        for call, name, owner in _calls(path):
            kw = {k.arg: k.value for k in call.keywords}
            if name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "cloudpickle.load", "cloudpickle.loads",
                        "dill.load", "dill.loads", "joblib.load", "pd.read_pickle", "pandas.read_pickle"):
                found.append(f"{rel}:{call.lineno} {name}")
            if name in ("np.load", "numpy.load") and not (isinstance(kw.get("allow_pickle"), ast.Constant)
                                                           and kw["allow_pickle"].value is False):
                if "allow_pickle" in kw:
                    found.append(f"{rel}:{call.lineno} {ast.unparse(call)}")
    assert not found, "unpickling outside logs/nuplan/_pickle.py:\n" + "\n".join(found)
    src = (LIBRARY / "logs" / "nuplan" / "_pickle.py").read_text()
    assert "class _ListOnlyUnpickler(pickle.Unpickler)" in src and "def find_class" in src


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_the_restricted_unpickler_refuses_a_malicious_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Exploit(marker), protocol=4)
    with pytest.raises(CorruptFileError, match="posix.system|os.system|not allowed"):
        loads_restricted(payload, "log.db: camera.rotation")
    assert not marker.exists(), "the payload ran"
    nested = pickle.dumps([1.0, _Exploit(marker)], protocol=2)
    with pytest.raises(CorruptFileError):
        loads_restricted(nested, "log.db: camera.intrinsic")
    assert not marker.exists()
    assert loads_restricted(pickle.dumps([1.0, 2.0, 3.0], protocol=4), "ok") == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("name", ["../../etc/x", "../x", "/etc/passwd", "a/../../x", "..", ".hidden", "a\\..\\x",
                                  "x\x00y", ""])
def test_export_names_cannot_leave_the_workspace(tmp_path: Path, name: str) -> None:
    ws = Workspace.open(tmp_path / "ws")
    try:
        with pytest.raises(WorkspaceError, match="plain file name|plain name"):
            ws.put_artifact("exports", name, b"data")
        with pytest.raises(WorkspaceError):
            ws.put_artifact(name, "x.bin", b"data")
    finally:
        ws.close()
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and tmp_path / "ws" not in p.parents]
    assert not outside and not Path("/etc/x").exists()


def test_jupyterlab_started_by_the_project_binds_loopback_with_a_token() -> None:
    make = (REPO / "Makefile").read_text()
    recipe = re.search(r"^lab:.*\n((?:\t.*\n)+)", make, re.M)
    assert recipe, "Makefile has no lab target"
    cmd = recipe.group(1)
    assert "--ip=127.0.0.1" in cmd
    for weak in ("token=''", 'token=""', "token= ", "--ip=0.0.0.0", "--ip=*", "disable_check_xsrf", "password=''"):
        assert weak not in cmd, f"make lab weakens access: {weak}"
    assert not list(REPO.glob("jupyter_*config.*")), "a repo-level Jupyter config could turn the token off"
    # the browser tests start JupyterLab and Voila the same way: loopback, random port, random token
    helper = (REPO / "tests" / "browser" / "_browser.py").read_text()
    assert '"--ip=127.0.0.1"' in helper and "--ServerApp.token={token}" in helper
    assert '"--Voila.ip=127.0.0.1"' in helper and "--token={token}" in helper
    assert helper.count("secrets.token_hex(16)") >= 2


def test_local_ray_starts_private_on_loopback_without_a_dashboard(monkeypatch) -> None:
    """Checked against a stand-in ``ray`` (no cluster is started); tests/jobs/test_job_ray.py checks on a live
    local cluster that every node is 127.0.0.1."""
    from worldengine_lab.jobs import ray_backend

    calls: list[dict] = []
    fake = types.ModuleType("ray")
    state = {"up": False}
    fake.is_initialized = lambda: state["up"]

    def init(**kwargs):
        calls.append(kwargs)
        state["up"] = True

    fake.init = init
    fake.shutdown = lambda: state.update(up=False)
    fake.nodes = lambda: [{"NodeManagerAddress": "127.0.0.1", "Alive": True}]
    fake.get_runtime_context = lambda: types.SimpleNamespace(gcs_address="127.0.0.1:6379")
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(ray_backend, "require_ray", lambda: fake)
    try:
        ray_backend.connect(num_cpus=1)
    except Exception:  # noqa: BLE001 - only the arguments of ray.init matter here
        pass
    finally:
        ray_backend._owned = False
    assert calls, "connect() did not call ray.init"
    kwargs = calls[0]
    assert kwargs.get("include_dashboard") is False
    assert kwargs.get("address") == "local"  # a private cluster: never attaches to one found on the machine
    assert ray_backend.RAY_ENV_DEFAULTS["RAY_USAGE_STATS_ENABLED"] == "0"
