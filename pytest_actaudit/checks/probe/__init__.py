"""The shortcut probe: is there a part of a class's maximization images that, carried
into trusted real images of other classes, makes the model read them as that class, more
than the same part of the class's own trusted images does? numpy and OpenCV only; the
model is reached through callables: ``predict`` (uint8 images → class probabilities),
``attribute`` (images, class → attribution maps) and ``detectors`` (images → the last
spatial layer's channels at their strongest place).

For every seed's image and every kind of evidence the probe measures the **flip rate**:
the share of the other classes' references that the model reads as the class once the
part is carried into them. The **control** is the same with the class's own references as
sources: what the real object does. The **excess** is flip rate − control.

One module per kind of evidence, each saying why its control is what it is:

* :mod:`.window`: the most salient half-side window, pasted at its place;
* :mod:`.unseen`: where a detector fires far beyond anything the trusted images show;
* :mod:`.colour` and :mod:`.low_frequencies`: a cast, a background, lighting;
* :mod:`.object_free`: object-free edits read as the class with a clear margin;
* :mod:`.needed_edit`: the edit the class's own references need to be read right.

:mod:`.transfer` carries the parts and collects them for one call of the model,
:mod:`.decision` runs the probe and weighs each part against its control,
:mod:`.trusted` says when the references allow no comparison, :mod:`.evidence` holds
what is found. What was measured to work and not: ``docs/shortcuts.md``.
"""

from .decision import probe
from .evidence import DECISIVE_NOVELTY, Evidence, ProbeResult
from .object_free import unfit_for_margins
from .trusted import check_references_are_read

__all__ = [
    "DECISIVE_NOVELTY",
    "Evidence",
    "ProbeResult",
    "check_references_are_read",
    "probe",
    "unfit_for_margins",
]
