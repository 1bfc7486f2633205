"""Raw per-image inputs of the joint model: backbone features of the main-object crop + colour.

``image_inputs(images, encoder)`` returns an (N, IMAGE_INPUT_DIM) float32 array: the 1280-d
EfficientNet-Lite0 pooled features of the cropped, square-padded object followed by the
``COLOUR_DIM``-d colour descriptor of its foreground. Ingest computes these once per image and
hands them to :meth:`engine.models.joint.JointModel.embed_image_features` and to
:meth:`~engine.models.joint.JointModel.predict_attributes`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from engine.models.colour import COLOUR_DIM, colour_features
from engine.models.crop import find_main_object, pad_to_square
from engine.models.encoders import IMAGE_FEATURE_DIM, ImageEncoder

IMAGE_INPUT_DIM = IMAGE_FEATURE_DIM + COLOUR_DIM


def crop_and_colour(img: Image.Image) -> tuple[Image.Image, np.ndarray]:
    """The square main-object crop and the colour descriptor of one image."""
    rgb = img.convert("RGB")
    crop = find_main_object(rgb)
    cropped = rgb if crop.full_image else rgb.crop(crop.box)
    return pad_to_square(cropped, crop.background), colour_features(rgb, crop)


def image_inputs(images: Sequence[Image.Image], encoder: ImageEncoder) -> np.ndarray:
    """(N, IMAGE_INPUT_DIM) float32: backbone features of the crop, then colour features."""
    if len(images) == 0:
        return np.zeros((0, IMAGE_INPUT_DIM), dtype=np.float32)
    crops, colours = zip(*(crop_and_colour(img) for img in images), strict=True)
    backbone = encoder.features(list(crops))
    return np.concatenate([backbone, np.stack(colours)], axis=1).astype(np.float32)
