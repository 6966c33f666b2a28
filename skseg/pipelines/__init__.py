"""The four pipelines as scikit-learn estimators over one shared network."""

from .base import BaseSegmentationEstimator
from .osd import OSDEstimator
from .resegmentation import ResegmentationEstimator
from .segmentation import SegmentationEstimator
from .vad import VADEstimator

__all__ = [
    "BaseSegmentationEstimator",
    "OSDEstimator",
    "ResegmentationEstimator",
    "SegmentationEstimator",
    "VADEstimator",
]
