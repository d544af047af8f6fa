"""Using a trained detector on any video, image or folder: the scoring engines, `Detector`, `fiagen predict`."""
