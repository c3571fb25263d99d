"""A session's masks through a real Label Studio server and back (``-m label_studio``).

The module starts Label Studio on 127.0.0.1 with a fresh data directory (its database
migrations take about a minute), then does what a user does: ``sid4ds export --format
label-studio`` into the server's local-files document root, a project made with the
exported labelling interface, the exported tasks imported through the SDK, the waiting
images annotated with their true masks, the project exported as JSON and that file
taken back with ``sid4ds import --label-studio``. Skipped when ``label-studio`` is not
installed (``pip install label-studio``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sid4ds.cli import main
from sid4ds.datasets import make_defect_images
from sid4ds.session import LabelingSession, brush_rle_to_mask

from .test_session import TINY_SCORER, TINY_SEGMENTER, write_masks

pytest.importorskip("label_studio", reason="needs the Label Studio server: pip install "
                                           "label-studio")
pytest.importorskip("label_studio_sdk", reason="needs the Label Studio SDK: pip install "
                                               "\"sid4ds[label-studio]\"")
httpx = pytest.importorskip("httpx", reason="needs httpx, which label-studio-sdk installs")

pytestmark = [
    pytest.mark.label_studio,
    # label-studio-sdk 2.1 refreshing its access token
    pytest.mark.filterwarnings("ignore:The `parse_obj` method is deprecated:DeprecationWarning"),
]

EMAIL = "labeller@example.com"
PASSWORD = "sid4ds-test-password"
START_TIMEOUT = 300  # s; a fresh data directory migrates its database first (~1 min)
STOP_TIMEOUT = 20  # s, after SIGTERM, before SIGKILL
EXPORT_FOLDER = "sid4ds_export"  # under the document root
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Label Studio reads its settings as LABEL_STUDIO_X, HEARTEX_X or plain X: a stray HOST,
# PORT, USERNAME, ... in the environment would change the server under test.
_SETTINGS = ("USERNAME", "PASSWORD", "USER_TOKEN", "HOST", "PORT", "BASE_DATA_DIR",
             "DATABASE_NAME", "DJANGO_DB", "DEBUG", "LOG_LEVEL",
             "LOCAL_FILES_SERVING_ENABLED", "LOCAL_FILES_DOCUMENT_ROOT")


# ---------------------------------------------------------------------- the server
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_environment(data_dir: Path, document_root: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not any(key in (name, f"LABEL_STUDIO_{name}", f"HEARTEX_{name}")
                      for name in _SETTINGS)}
    env.update({
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
        # offline: no version check, no error reporting, no usage analytics
        "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
        "LABEL_STUDIO_SENTRY_DSN": "",
        "LABEL_STUDIO_FRONTEND_SENTRY_DSN": "",
        "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def _log_tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_until_healthy(process: subprocess.Popen, port: int, log: Path) -> str:
    """The server's URL once GET /health answers; fails with the log's tail otherwise."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Label Studio exited with code {process.returncode} while starting; "
                        f"its log ends:\n{_log_tail(log)}")
        # Label Studio moves to the next port, with a warning, when its port is taken
        moved = re.findall(r"Trying to start at (\d+)", _log_tail(log, 200))
        url = f"http://127.0.0.1:{moved[-1] if moved else port}"
        try:
            answer = httpx.get(f"{url}/health", timeout=2)
            if answer.status_code == 200 and answer.json().get("status") == "UP":
                return url
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    pytest.fail(f"Label Studio did not answer GET /health within {START_TIMEOUT} s; its log "
                f"ends:\n{_log_tail(log)}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL if it is still there after a while."""
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait)


def _personal_access_token(url: str) -> str:
    """Log in with email and password, then create the user's personal access token."""
    with httpx.Client(base_url=url, timeout=30) as client:
        client.get("/user/login/").raise_for_status()
        login = client.post("/user/login/", data={
            "email": EMAIL, "password": PASSWORD,
            "csrfmiddlewaretoken": client.cookies["csrftoken"]},
            headers={"Referer": f"{url}/user/login/"})
        assert login.status_code == 302, f"login failed: {login.status_code} {login.text[:300]}"
        token = client.post("/api/token/", headers={"X-CSRFToken": client.cookies["csrftoken"],
                                                    "Referer": f"{url}/"})
        assert token.status_code == 201, f"no token: {token.status_code} {token.text[:300]}"
        return token.json()["token"]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory) -> tuple[str, str, Path]:
    """A running Label Studio: (URL, personal access token, local-files document root)."""
    root = tmp_path_factory.mktemp("label_studio")
    data_dir, document_root, log = root / "data", root / "files", root / "server.log"
    data_dir.mkdir()
    document_root.mkdir()
    port = _free_port()
    command = [sys.executable, "-m", "label_studio.server", "start", "--no-browser",
               "--internal-host", "127.0.0.1", "-p", str(port), "--data-dir", str(data_dir),
               "--username", EMAIL, "--password", PASSWORD, "--log-level", "WARNING"]
    with open(log, "wb") as output:
        process = subprocess.Popen(command, env=_server_environment(data_dir, document_root),
                                   stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        started = time.monotonic()
        url = _wait_until_healthy(process, port, log)
        print(f"Label Studio answered at {url} after {time.monotonic() - started:.0f} s")
        yield url, _personal_access_token(url), document_root
    finally:
        _stop(process)


# ---------------------------------------------------------------------- the round trip
@pytest.fixture
def pool(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    """40 generated 16 px images (partNN.png) and their true masks by name."""
    X, masks = make_defect_images(n_samples=40, image_size=16, defect_ratio=0.2,
                                  random_state=0)
    folder = tmp_path / "images"
    folder.mkdir()
    truth = {}
    for index, image in enumerate(X):
        name = f"part{index:02d}"
        Image.fromarray(np.round(image[0] * 255).astype(np.uint8)).save(folder / f"{name}.png")
        truth[name] = masks[index]
    return folder, truth


def _cli(capsys, *args) -> str:
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    assert code == 0, f"sid4ds {' '.join(map(str, args))} failed ({code}):\n{out}\n{err}"
    return out


def _brush(mask: np.ndarray) -> list[dict]:
    """What the labeller draws: one BrushLabels region, or nothing on a normal image."""
    from label_studio_sdk.converter.brush import mask2rle

    if not mask.any():
        return []
    height, width = mask.shape
    return [{"from_name": "defect", "to_name": "image", "type": "brushlabels",
             "original_width": width, "original_height": height, "image_rotation": 0,
             "value": {"format": "rle", "rle": mask2rle(mask.astype(np.uint8) * 255),
                       "brushlabels": ["defect"]}}]


def _mask_of(results: list[dict], shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for result in results:
        mask |= brush_rle_to_mask(result["value"]["rle"], result["original_height"],
                                  result["original_width"])
    return mask


def test_masks_go_through_label_studio_and_back(tmp_path, pool, label_studio, capsys):
    from label_studio_sdk import LabelStudio

    url, token, document_root = label_studio
    images, truth = pool
    # S marks every pixel (threshold 0), so each waiting task gets a non-empty pre-annotation
    session = LabelingSession.create(tmp_path / "session", images, seed=0,
                                     scorer_params=TINY_SCORER,
                                     segmenter_params={**TINY_SEGMENTER, "threshold": 0.0})
    first = session.query(n_label=8, verbose=0)
    session.import_masks(write_masks(tmp_path / "answers", first["selected"], truth))
    assert any(truth[name].any() for name in first["selected"]), "round 0 found no defect"
    second = session.query(n_label=8, verbose=0)
    assert second["stage"] == "iterative"  # S is trained: the export has its predictions
    waiting, labelled = second["selected"], first["selected"]
    assert any(truth[name].any() for name in waiting)
    assert not all(truth[name].any() for name in waiting)  # a normal one to label empty

    out = document_root / EXPORT_FOLDER
    _cli(capsys, "export", session.path, "--format", "label-studio", "--out", out,
         "--image-url-prefix", f"/data/local-files/?d={EXPORT_FOLDER}/images/")
    exported = json.loads((out / "tasks.json").read_text())
    assert sorted(task["data"]["sid4ds_name"] for task in exported) == sorted(
        waiting + labelled)

    # --- the user's script, with the SDK
    ls = LabelStudio(base_url=url, api_key=token)
    project = ls.projects.create(title="sid4ds round 1",
                                 label_config=(out / "label_config.xml").read_text())
    ls.import_storage.local.create(project=project.id, path=str(out / "images"),
                                   use_blob_urls=True, title="sid4ds images")
    imported = ls.projects.import_tasks(project.id, request=exported)
    assert (imported.task_count, imported.annotation_count, imported.prediction_count) == (
        len(exported), len(labelled), len(waiting))
    task_of = {task.data["sid4ds_name"]: task for task in ls.tasks.list(project=project.id)}
    assert sorted(task_of) == sorted(waiting + labelled)

    # the pre-annotations arrived: S's masks, as exported, on the waiting tasks
    predicted = {task["data"]["sid4ds_name"]: task["predictions"][0]["result"]
                 for task in exported if "predictions" in task}
    assert sorted(predicted) == sorted(waiting)
    # the labelling interface shows the predictions of the project's model version
    assert ls.projects.get(project.id).model_version == "sid4ds-S-round1"
    for name in waiting:
        predictions = ls.predictions.list(task=task_of[name].id)
        assert len(predictions) == 1, name
        assert predictions[0].model_version == "sid4ds-S-round1"
        arrived = _mask_of(predictions[0].result, (16, 16))
        assert arrived.all(), name
        assert np.array_equal(arrived, _mask_of(predicted[name], (16, 16))), name

    # the images are served from the local-files storage (to a logged-in user)
    access = httpx.post(f"{url}/api/token/refresh", json={"refresh": token}, timeout=30)
    access.raise_for_status()
    name = waiting[0]
    image = httpx.get(url + task_of[name].data["image"], timeout=30,
                      headers={"Authorization": f"Bearer {access.json()['access']}"})
    assert image.status_code == 200, (image.status_code, image.text[:300])
    assert image.content.startswith(PNG_SIGNATURE)
    assert image.content == (out / "images" / f"{name}.png").read_bytes()

    # the labeller draws the true masks (nothing on a normal image) and submits
    for name in waiting:
        ls.annotations.create(id=task_of[name].id, result=_brush(truth[name]),
                              was_cancelled=False, lead_time=2.0)

    export = tmp_path / "project-export.json"
    export.write_bytes(b"".join(ls.projects.exports.download_sync(
        project.id, export_type="JSON", download_all_tasks=True)))
    assert len(json.loads(export.read_text())) == len(exported)

    # --- back into the session
    printed = _cli(capsys, "import", session.path, "--label-studio", export)
    assert f"imported {len(waiting)} new masks, replaced 0, {len(labelled)} unchanged" in printed
    reopened = LabelingSession.open(session.path)
    assert sorted(reopened.labeled_names) == sorted(waiting + labelled)
    for name in waiting + labelled:
        assert np.array_equal(reopened.mask(name), truth[name]), name
    assert reopened.status()["n_waiting"] == 0
