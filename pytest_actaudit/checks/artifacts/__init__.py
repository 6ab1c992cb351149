"""Artifacts a user can name, for ``audit.assert_ignores(artifact)``: a square, a text
mark, a pasted logo, a band, a frame, a colour cast, or any function of the images.

The shortcut probe (``assert_no_shortcut``) looks for artifacts nobody named. Some it
cannot find: a small solid patch that a model answers only at its exact place, size and
colour (``docs/shortcuts.md``). A team often knows its suspects: the scanner's stamp in
one corner, the watermark of one photo source, the hospital's tag. Naming one turns the
question into a direct measurement: pasted into trusted images of *other* classes, how
many does the model then read as this class?

:mod:`.artifact` says what an artifact is, :mod:`.shapes` and :mod:`.lettering` draw the
kinds a user names, :mod:`.written` reads them from the ini, :mod:`.reading` measures one
on the references. numpy and OpenCV only; the model is reached through ``predict``
(uint8 images → class probabilities).
"""

from .artifact import Artifact, as_artifact
from .lettering import text
from .reading import DEFAULT_MAX_PULL, DEFAULT_MAX_RISE, TOP_SHARE, ArtifactReading, measure
from .shapes import band, cast, frame, patch, square
from .written import WRITTEN, parse, parse_lines, patch_file

__all__ = [
    "DEFAULT_MAX_PULL",
    "DEFAULT_MAX_RISE",
    "TOP_SHARE",
    "WRITTEN",
    "Artifact",
    "ArtifactReading",
    "as_artifact",
    "band",
    "cast",
    "frame",
    "measure",
    "parse",
    "parse_lines",
    "patch",
    "patch_file",
    "square",
    "text",
]
