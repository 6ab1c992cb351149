"""Named suspects: ``pytest_actaudit.checks.artifacts`` and ``ClassAudit.assert_ignores``, on
pixels, on a fake model, on a hand-made partial shortcut and on the demo models."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

import pytest_actaudit
from pytest_actaudit import ActauditError, AuditFailure, artifacts
from pytest_actaudit.checks.audit import ClassAudit
from tests.conftest import COLORS, build_color_model
from tests.test_edits import band_shortcut_model
from tests.test_probe import references

ZOO = Path(__file__).resolve().parent.parent / "benchmarks" / "shortcut_zoo.py"
GREY = np.full((2, 16, 20, 3), 40, np.uint8)


def test_a_square_paints_only_its_square():
    out = artifacts.square(x=3, y=5, size=4, colour=(255, 140, 0))(GREY)
    assert (out[:, 5:9, 3:7] == (255, 140, 0)).all()
    out[:, 5:9, 3:7] = 40
    np.testing.assert_array_equal(out, GREY)
    # a grey image gets the colour's luminance
    grey = artifacts.square(0, 0, 2, (255, 0, 0))(np.zeros((1, 8, 8, 1), np.uint8))
    assert grey[0, 0, 0, 0] == round(0.299 * 255)


def test_a_patch_blends_by_its_alpha_and_the_opacity():
    logo = np.zeros((2, 3, 4), np.uint8)
    logo[..., :3] = 240
    logo[0, :, 3] = 255  # top row opaque, bottom row transparent
    out = artifacts.patch(logo, x=1, y=1, opacity=0.5)(GREY)
    assert (out[:, 1, 1:4] == 140).all()  # 40 + 0.5 × (240 − 40)
    assert (out[:, 2, 1:4] == 40).all()
    assert (artifacts.patch(logo[..., :3], 0, 0)(GREY)[:, :2, :3] == 240).all()


def test_text_band_frame_and_cast_edit_the_images():
    for artifact in (
        artifacts.text("wm", x=1, y=12),
        artifacts.band("bottom", 2, (255, 0, 255)),
        artifacts.frame(1, 128),
        artifacts.cast((1.0, 0.85, 0.6), (50.0, 15.0, 0.0)),
    ):
        out = artifact(GREY)
        assert out.shape == GREY.shape and out.dtype == np.uint8
        assert not np.array_equal(out, GREY), artifact.description
    band = artifacts.band("bottom", 2, (255, 0, 255))(GREY)
    assert (band[:, -2:] == (255, 0, 255)).all() and (band[:, :-2] == 40).all()
    text = artifacts.text("wm", x=1, y=12)(GREY)
    assert text[:, :3].max() == 40 and text[:, 5:13].max() > 100  # ink above the baseline


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: artifacts.square(18, 2, 4, (0, 0, 0))(GREY), r"x=18\.\.21.*20×16 px"),
        (lambda: artifacts.text("a long watermark", 2, 14)(GREY), "does not fit"),
        (lambda: artifacts.square(0, 0, 2, (300, 0, 0))(GREY), r"colour \(300, 0, 0\)"),
        (lambda: artifacts.patch(np.zeros((2, 2), np.uint8), 0, 0), r"uint8 pixels.*\(2, 2\)"),
        (lambda: artifacts.band("middle", 2, 0), "band edge 'middle'"),
        (lambda: artifacts.as_artifact(lambda x: x[:, :4])(GREY), "must keep the shape"),
        (lambda: artifacts.as_artifact("the logo"), "needs an artifact"),
        (lambda: artifacts.as_artifact(lambda x: x / 255.0)(GREY), "returned float64 images"),
        (lambda: artifacts.square(0, 0, 0, (0, 0, 0)), r"size=0: expected a whole number"),
        (lambda: artifacts.square(1.5, 0, 2, (0, 0, 0)), r"x=1\.5: expected a whole number"),
        (lambda: artifacts.band("top", 0, 0), r"width=0"),
        (lambda: artifacts.frame(9, 0)(GREY), "wider than half the model's 20×16 px"),
        (lambda: artifacts.cast((1.0, 1.0), (0, 0, 0)), r"gain=\(1\.0, 1\.0\): expected 3"),
        (lambda: artifacts.text("a", 0, 9, opacity=2), r"opacity=2: expected a value from 0"),
    ],
)
def test_bad_artifacts_name_the_value(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def corner_model(images):
    """Reads "red" wherever the top-left 2×2 px are orange, else the image's main colour."""
    x = images.astype(np.float64)
    p = np.full((len(x), 3), 0.05)
    main = x.mean(axis=(1, 2)).argmax(axis=1)
    p[np.arange(len(x)), main] = 0.9
    orange = (np.abs(x[:, :2, :2] - (255, 140, 0)).max(axis=(1, 2, 3))) < 1
    p[orange] = (0.999, 0.0005, 0.0005)
    return p


def test_measure_counts_what_the_artifact_turns_into_the_class():
    images, labels = references()
    suspect = artifacts.square(0, 0, 2, (255, 140, 0))
    reading = artifacts.measure(0, suspect, images, labels, corner_model)
    assert reading.others == 16 and reading.own == 8
    assert reading.read == 1.0 and reading.before == 0.0 and reading.pull == 1.0
    assert reading.clearly == 1.0  # log(0.999/0.0005) ≥ 2.5 × log(0.9/0.05)
    assert reading.own_without == 1.0 and reading.own_with == 1.0
    assert len(reading.examples) == 4 and (reading.examples[0][:2, :2] == (255, 140, 0)).all()
    other = artifacts.measure(1, suspect, images, labels, corner_model)
    assert other.read == 0.0 and other.pull == 0.0  # it pulls to red, not to green


def test_the_pull_is_counted_exactly_and_the_pictures_show_it_working():
    # 11 of 30 other-class references already read as the class, 23 with the suspect
    labels = np.repeat([0, 1, 2], [10, 15, 15])
    images = np.zeros((40, 4, 4, 3), np.uint8)
    images[:, 1, 1, 0] = np.arange(40)

    def predict(x):
        k = x[:, 1, 1, 0].astype(int)
        stamped = x[:, 0, 0, 1] == 255
        read = np.where((k < 10) | ((k >= 10) & (k < 21)) | (stamped & (k < 33)), 0, 1)
        p = np.full((len(x), 3), 0.05)
        p[np.arange(len(x)), read] = 0.9
        return p

    stamp = artifacts.square(0, 0, 1, (0, 255, 0))
    # the model reads its references right only in part: measure() itself does not refuse
    reading = artifacts.measure(0, stamp, images, labels, predict)
    assert reading.pull == 0.4 and reading.read == 23 / 30 and reading.before == 11 / 30
    # the first pictures are references the suspect turned (21 to 32), not 10 to 13
    shown = [int(e[1, 1, 0]) for e in reading.examples]
    assert shown == [21, 22, 23, 24]


def test_public_artifacts_paint_the_zoos_artifacts_pixel_for_pixel():
    from benchmarks import zoo

    images = zoo.example_images("tag", n=1)  # any shapes image
    images = np.concatenate([images, zoo.references(2)[0]])
    spec = importlib.util.spec_from_file_location("shortcut_zoo", ZOO)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    painted = bench.public_suspects()
    assert len(painted) == 10
    for kind, artifact in painted.items():
        np.testing.assert_array_equal(
            artifact(images), zoo.apply_artifact(kind, images), err_msg=kind
        )


def fake_audit(label: str, index: int, predict) -> ClassAudit:
    images, labels = references()
    audit = ClassAudit(
        label=label,
        index=index,
        images=np.zeros((2, 16, 16, 3), np.uint8),
        logits=np.zeros(2),
        probabilities=np.ones(2),
        seeds=[0, 1],
        steps=1,
        curves=np.zeros((2, 1)),
    )
    audit.probe_context = lambda: (images, labels, predict, None)
    return audit


def test_assert_ignores_fails_naming_the_suspect_and_records_one_value():
    suspect = artifacts.square(0, 0, 2, (255, 140, 0))
    audit = fake_audit("red", 0, corner_model)
    with pytest.raises(AuditFailure) as caught:
        audit.assert_ignores(suspect)
    message = str(caught.value)
    assert "class 'red' (index 0): ignores pull of a solid 2 px square" in message
    assert "value 1 (one value: the seeds' images do not enter it)" in message
    assert "required <= 0.4" in message and "(it makes the model read 100% of 16" in message
    assert "other-class references as this class (0% without it" in message
    (check,) = audit.checks
    assert check.values == [1.0] and not check.passed and check.threshold == 0.4
    assert audit.artifact_readings[0].description == suspect.description
    # the same suspect does not pull to green; a laxer threshold lets red pass
    fake_audit("green", 1, corner_model).assert_ignores(suspect)
    fake_audit("red", 0, corner_model).assert_ignores(suspect, max_pull=1.0)


def test_assert_ignores_takes_a_plain_function_and_needs_readable_references():
    def stamp(images):
        out = images.copy()
        out[:, :2, :2] = (255, 140, 0)
        return out

    with pytest.raises(AuditFailure, match=r"pull of stamp\(\)"):
        fake_audit("red", 0, corner_model).assert_ignores(stamp)

    def blind(images):
        return np.tile([0.1, 0.1, 0.8], (len(images), 1))

    with pytest.raises(ActauditError, match="cannot compare anything"):
        fake_audit("red", 0, blind).assert_ignores(stamp)
    bare = fake_audit("red", 0, corner_model)
    bare.probe_context = None
    with pytest.raises(ValueError, match="assert_ignores needs reference images"):
        bare.assert_ignores(stamp)


def test_a_learned_band_is_caught_and_a_clean_model_ignores_it():
    band = artifacts.band("bottom", 2, (255, 0, 255))

    def audit_of(model):
        (audit,) = pytest_actaudit.maximize(
            model, "blue", seeds=1, steps=2, labels=COLORS, references=references()
        )
        return audit

    with pytest.raises(AuditFailure, match=r"ignores pull of a 2 px \(255, 0, 255\) band"):
        audit_of(band_shortcut_model(100.0)).assert_ignores(band)
    for model in (band_shortcut_model(0.0), build_color_model(16, 16)):
        audit_of(model).assert_ignores(band)


def test_the_demo_shortcut_models_tag_is_named_and_caught(tmp_path: Path):
    from pytest_actaudit.demo import ARTIFACT_COLOR, models_dir, shapes

    inset, side = shapes.artifact_box(64)
    tag = artifacts.square(inset, inset, side, ARTIFACT_COLOR)
    images, labels = shapes.make_shapes(40, seed=shapes.TEST_SEED)
    audits = {}
    for name in ("clean", "shortcut"):
        (audits[name],) = pytest_actaudit.maximize(
            models_dir() / f"{name}.keras", "triangle", seeds=1, steps=2,
            references=(images, labels),
        )  # fmt: skip
    with pytest.raises(AuditFailure, match="ignores pull of a solid 8 px square"):
        audits["shortcut"].assert_ignores(tag)
    audits["clean"].assert_ignores(tag)
    from pytest_actaudit.report.writer import ImageSink, audit_record

    record = audit_record(audits["shortcut"], ImageSink(tmp_path))
    (suspect,) = record["suspects"]
    assert suspect["pull"] > 0.4 and len(suspect["examples"]) == 2
    assert all((tmp_path / path).is_file() for path in suspect["examples"])


def test_suspects_written_as_text_parse_to_the_same_artifacts():
    written = artifacts.parse('text words="(c) ACME" x=1 y=12 opacity=0.8 colour=0')
    made = artifacts.text("(c) ACME", x=1, y=12, opacity=0.8, colour=0)
    assert written.description == made.description
    wide = np.full((1, 16, 64, 3), 90, np.uint8)
    np.testing.assert_array_equal(written(wide), made(wide))
    cast = artifacts.parse("cast gain=1,0.85,0.6 offset=50,15,0")
    np.testing.assert_array_equal(cast(GREY), artifacts.cast((1, 0.85, 0.6), (50, 15, 0))(GREY))
    lines = (
        "\n  square x=5 y=50 size=6 colour=255,140,0\n  # the scanner's tag\n"
        "  frame width=3 colour=128\n"
    )
    assert [a.description for a in artifacts.parse_lines(lines)] == [
        artifacts.square(5, 50, 6, (255, 140, 0)).description,
        artifacts.frame(3, 128).description,
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("circle x=1", r"unknown kind 'circle'; write one of \['band', 'cast'"),
        ("square x=5 y=50 colour=1", "square needs size"),
        ("square x=a y=1 size=2 colour=0", r"x='a' is not a valid value"),
        ("band edge=top width=2 colour=0 depth=3", r"'depth=3' is not one of band's"),
        ("frame width=3 colour=300", r"colour 300 is not an RGB triple"),
        ('text words="unclosed x=1 y=2', "No closing quotation"),
    ],
)
def test_a_bad_written_suspect_names_the_line_and_the_fault(line, message):
    with pytest.raises(ValueError, match=message) as caught:
        artifacts.parse(line)
    assert f"suspect {line!r}" in str(caught.value)


ZERO_CODE = """
[pytest]
actaudit_model = {model}
actaudit_seeds = 1
actaudit_steps = 2
actaudit_suspects =
    band edge=bottom width=2 colour=255,0,255
    # a second suspect: nothing reads it
    square x=0 y=0 size=2 colour=0
{extra}"""

REFERENCES = """
import pytest
from tests_references import references

@pytest.fixture(scope="session")
def actaudit_references():
    return references()
"""


def test_zero_code_suspects_run_for_every_class(pytester, tmp_path):
    import inspect

    from tests import test_probe

    model = tmp_path / "band.keras"
    band_shortcut_model(100.0).save(model)
    (tmp_path / "labels.txt").write_text("\n".join(COLORS) + "\n")
    pytester.makepyfile(tests_references=inspect.getsource(test_probe.references).join(
        ["import numpy as np\n\n", ""]
    ))  # fmt: skip
    pytester.makeconftest(REFERENCES)
    pytester.makeini(ZERO_CODE.format(model=model, extra=""))
    result = pytester.runpytest_inprocess("--actaudit", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)  # blue reads the band; red and green do not
    result.stdout.fnmatch_lines(["*class 'blue' (index 2): ignores pull of a 2 px (255, 0, 255)*"])
    report = json.loads((pytester.path / "actaudit-report" / "results.json").read_text())
    for audit in report["audits"]:
        assert [c["name"] for c in audit["checks"]] == ["ignores", "ignores"]
        assert len(audit["suspects"]) == 2
    pytester.makeini(ZERO_CODE.format(model=model, extra="actaudit_max_pull = 1.0"))
    pytester.runpytest_inprocess("--actaudit", "-p", "no:cacheprovider").assert_outcomes(passed=3)
    # a rise threshold alone is a threshold of the suspects' check (a 3-class model: the
    # pull decides)
    pytester.makeini(ZERO_CODE.format(model=model, extra="actaudit_max_rise = 0.5"))
    result = pytester.runpytest_inprocess("--actaudit", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)


def test_a_bad_suspect_in_the_ini_stops_the_run(pytester, tmp_path):
    pytester.makeini(
        "[pytest]\nactaudit_model = m.keras\nactaudit_suspects = square x=1 y=1 colour=0\n"
    )
    result = pytester.runpytest_inprocess("--actaudit")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*actaudit_suspects: suspect 'square x=1 y=1 colour=0'*size*"])


def test_a_logo_file_is_a_written_patch(tmp_path, monkeypatch):
    import cv2

    logo = np.zeros((6, 10, 4), np.uint8)
    logo[..., 2] = 255  # red, in OpenCV's BGRA order
    logo[..., 3] = 200
    cv2.imwrite(str(tmp_path / "acme.png"), logo)
    monkeypatch.chdir(tmp_path)  # paths are relative to the folder pytest runs in
    written = artifacts.parse("patch file=acme.png x=2 y=3 opacity=0.5")
    assert written.description == "a 10×6 px patch acme.png at x=2, y=3"
    out = written(np.zeros((1, 16, 16, 3), np.uint8))
    assert tuple(out[0, 3, 2]) == (100, 0, 0) and out[0, 0, 0].max() == 0  # 255 × 200/255 × 0.5
    with pytest.raises(ValueError, match=r"'nope\.png' is not a readable image"):
        artifacts.parse("patch file=nope.png x=1 y=1")


# ------------------------------------------------------------------ any script, a control
CJK_FONT = Path("/usr/share/fonts/opentype/noto/NotoSerifCJK-ExtraLight.ttc")
needs_cjk_font = pytest.mark.skipif(
    not CJK_FONT.is_file() and not os.environ.get("CI"),
    reason="Debian's fonts-noto-cjk-extra is not installed (.ci/run installs it)",
)


def imagenet_w(size: int = 224) -> artifacts.Artifact:
    """The ImageNet-W watermark (Li et al., CVPR 2023) as published: 捷径捷径捷径 in
    white at opacity 0.5, font size 36 at 224 px, at x = 0.01 W, y = 0.4 H."""
    return artifacts.text(
        "捷径捷径捷径", x=int(0.01 * size), y=int(0.4 * size), opacity=0.5,
        font=CJK_FONT, size=36 if size == 224 else int(size / 6.22), face=2,
    )  # fmt: skip


@needs_cjk_font
def test_text_in_any_script_from_a_font_file():
    images = np.full((2, 224, 224, 3), 40, np.uint8)
    mark = imagenet_w()
    out = mark(images)
    changed = np.argwhere((out != images).any(axis=(0, 3)))
    (top, left), (bottom, right) = changed.min(axis=0), changed.max(axis=0)
    # drawn where PIL draws it (x = 2, the ascender line at y = 89), about 216 px wide
    assert 2 <= left <= 6 and 89 <= top <= 102 and 200 <= right - left <= 216 and bottom < 140
    assert out.max() <= 40 + 0.5 * (255 - 40) + 1  # white at opacity 0.5
    assert "NotoSerifCJK-ExtraLight.ttc at 36 px" in mark.description
    # its control: a neutral Latin text no wider, in the same font, size and place
    control = mark.control(images)
    assert mark.control.description.startswith("a neutral text 'lorem ips")
    ink = np.argwhere((control != images).any(axis=(0, 3)))
    assert ink[:, 1].max() <= right and abs(int(ink[:, 0].min()) - int(top)) < 12


@needs_cjk_font
def test_a_font_that_lacks_the_glyphs_or_is_no_font_is_refused(tmp_path):
    not_a_font = tmp_path / "notes.ttf"
    not_a_font.write_text("hello")
    with pytest.raises(ValueError, match=r"'.*notes.ttf' \(face 0\) cannot be read as a Tr"):
        artifacts.text("wm", 0, 0, font=not_a_font, size=12)
    with pytest.raises(ValueError, match=r"font file 'missing.otf' not found .*fonts-noto-cjk"):
        artifacts.text("wm", 0, 0, font="missing.otf", size=12)
    with pytest.raises(ValueError, match="needs size=PX"):
        artifacts.text("wm", 0, 0, font=CJK_FONT)
    with pytest.raises(ValueError, match="draws ASCII only; pass font=PATH"):
        artifacts.text("捷径", 0, 20)
    latin = next(Path("/usr/share/fonts/truetype/dejavu").glob("DejaVuSans.ttf"), None)
    if latin is not None:
        with pytest.raises(ValueError, match=r"no glyph for '捷' \(U\+6377\)"):
            artifacts.text("捷径", 0, 0, font=latin, size=20)


def test_every_public_artifact_has_a_control_that_differs_in_content_only():
    images = np.full((2, 32, 32, 3), 90, np.uint8)
    for artifact in (
        artifacts.square(2, 2, 6, (255, 0, 255)),
        artifacts.patch(np.full((4, 6, 3), (200, 30, 30), np.uint8), 1, 1),
        artifacts.text("wm", x=2, y=20),
        artifacts.band("left", 3, (0, 0, 255)),
        artifacts.frame(2, (30, 60, 255)),
        artifacts.cast((1.0, 0.85, 0.6), (50.0, 15.0, 0.0)),
    ):
        edited, control = artifact(images), artifact.control(images)
        assert control.shape == images.shape and not np.array_equal(control, edited)
        # the control touches the same part of the image (a cast: all of it)
        touched = (edited != images).any(axis=(0, 3))
        assert (control != images).any(axis=(0, 3))[~touched].sum() <= touched.sum() // 2
        grey = control.astype(int)
        if artifact.description.startswith(("a solid", "a 6×4", "a 3 px", "a 2 px")):
            assert (grey[..., 0] == grey[..., 1]).all(), artifact.description  # grey ink


def many_class_model(classes: int, pulled: int, lift: float):
    """``classes`` classes read from the image's mean level; an orange 2 px square at the
    top-left adds ``lift`` to class ``pulled``'s logit (it never wins top-1); any square
    there, whatever its colour, adds 0.5 to class 0's (covering part of the image)."""

    def predict(x):
        x = x.astype(np.float64)
        logits = np.zeros((len(x), classes))
        logits[np.arange(len(x)), (x[:, 4:, 4:].mean(axis=(1, 2, 3)) * 7).astype(int) % classes] = 6
        corner = x[:, :2, :2]
        orange = np.abs(corner - (255, 140, 0)).max(axis=(1, 2, 3)) < 1
        covered = (np.abs(corner - x[:, 4:6, 4:6]).max(axis=(1, 2, 3)) > 0) | orange
        logits[orange, pulled] += lift
        logits[covered, 0] += 0.5
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    return predict


def level_references(n: int = 40):
    images = np.repeat(np.linspace(10, 200, n).astype(np.uint8), 8 * 8 * 3).reshape(n, 8, 8, 3)
    return images


def test_the_specific_rise_is_measured_against_the_control_and_ranked():
    images = level_references()
    predict = many_class_model(200, pulled=17, lift=3.0)
    labels = np.argmax(predict(images), axis=1)
    suspect = artifacts.square(0, 0, 2, (255, 140, 0))
    reading = artifacts.measure(17, suspect, images, labels, predict)
    assert reading.pull == 0 and reading.classes == 200 and reading.top == 2
    assert reading.rank == 1 and reading.specific_rise == pytest.approx(3.0, abs=0.2)
    assert reading.control.startswith("a grey (") and reading.specific(2.0)
    assert reading.specific_by_class[17] == reading.specific_rise  # what the rank ranks
    # covering part of the image raises class 0 for the suspect and its control alike
    zero = artifacts.measure(0, suspect, images, labels, predict)
    assert zero.rise > 0.4 and abs(zero.specific_rise) < 0.05 and zero.rank >= 2
    assert not zero.specific(0.1)
    # a function of the images has no control: it is measured against the plain images
    plain = artifacts.measure(17, artifacts.as_artifact(suspect.apply), images, labels, predict)
    assert plain.control == "the plain images" and plain.specific_rise == plain.rise > 2.5
    # no reference of the class: measured on the others all the same
    assert reading.own == 0 and np.isnan(reading.own_with)
    assert "not measured" in reading.describe()


def test_assert_ignores_fails_a_specific_rise_on_a_many_class_model_only():
    images = level_references()
    suspect = artifacts.square(0, 0, 2, (255, 140, 0))

    def audit_of(predict, index):
        labels = np.argmax(predict(images), axis=1)
        audit = fake_audit("carton", index, predict)
        audit.probe_context = lambda: (images, labels, predict, None, None, None, None, True)
        return audit

    audit = audit_of(many_class_model(200, pulled=17, lift=3.0), 17)
    with pytest.raises(AuditFailure) as caught:
        audit.assert_ignores(suspect)
    message = str(caught.value)
    assert "ignores rise of this class's log-probability with a solid 2 px square" in message
    assert "failed (rank 1 of 200)" in message and "required <= 2" in message
    assert "raises 'carton''s log-probability by +2.9" in message
    assert "of 200 classes, 'carton' rises most" in message
    assert [c.passed for c in audit.checks] == [True, False]
    # a weaker lift, a laxer threshold, or a model with few classes: it passes
    audit_of(many_class_model(200, pulled=17, lift=1.0), 17).assert_ignores(suspect)
    audit_of(many_class_model(200, pulled=17, lift=3.0), 17).assert_ignores(suspect, max_rise=4)
    few = audit_of(many_class_model(20, pulled=17, lift=3.0), 17)
    few.assert_ignores(suspect)
    assert len(few.checks) == 1 and "the rank is no evidence" in few.checks[0].message


@needs_cjk_font
def test_a_text_in_any_script_is_written_in_the_ini_too():
    line = f"text words=捷径捷径捷径 x=2 y=89 opacity=0.5 font={CJK_FONT} size=36 face=2"
    written = artifacts.parse(line)
    images = np.full((1, 224, 224, 3), 30, np.uint8)
    np.testing.assert_array_equal(written(images), imagenet_w()(images))


def test_a_control_that_paints_the_same_pixels_is_not_used():
    # a white square's grey control is white: measured against the plain images instead
    images = level_references()
    predict = many_class_model(200, pulled=17, lift=3.0)
    labels = np.argmax(predict(images), axis=1)
    white = artifacts.square(0, 0, 2, 255)
    reading = artifacts.measure(0, white, images, labels, predict)
    assert reading.control.startswith("the plain images (a grey (255) square")
    assert reading.rise > 0.4 and reading.specific_rise == reading.rise  # covering it counts


def test_a_logo_file_keeps_its_control(tmp_path):
    import cv2

    path = tmp_path / "logo.png"
    cv2.imwrite(str(path), np.full((4, 6, 3), (0, 0, 255), np.uint8))
    logo = artifacts.parse(f"patch file={path} x=1 y=1")
    assert logo.control is not None and logo.control.description.startswith("a grey (")


def test_a_suspect_that_does_not_fit_is_an_actaudit_error():
    from pytest_actaudit import ActauditError

    with pytest.raises(ActauditError, match="does not fit"):
        artifacts.square(30, 30, 6, 255)(GREY)
