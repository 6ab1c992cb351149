"""The judging domain: numpy, OpenCV and scikit-image; never the engine."""
