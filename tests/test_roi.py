"""RoIAlign coordinates: where a box samples a feature map, and scaling with the image."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deeptrack.appearance.pooling import pool
from deeptrack.appearance.roi import boxes_to_rois, roi_align_maps, scale_boxes
from deeptrack.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mobilenet_file(tmp_path_factory):
    """A random MobileNetV2's convolutional part, saved as a plain state_dict file."""
    import torchvision

    state = {k: v for k, v in torchvision.models.mobilenet_v2().state_dict().items()
             if k.startswith("features.")}
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2_features.pth"
    torch.save(state, path)
    return path


def test_boxes_to_rois_batch_index_and_empty():
    rois = boxes_to_rois([np.array([[0, 0, 4, 4.0]]), np.zeros((0, 4)), [[1, 2, 3, 5]]])
    np.testing.assert_array_equal(rois.numpy(), [[0, 0, 0, 4, 4], [2, 1, 2, 3, 5]])
    assert boxes_to_rois([]).shape == (0, 5)
    with pytest.raises(InputError, match="boxes of image 1"):
        boxes_to_rois([np.zeros((0, 4)), [[5, 5, 1, 1]]])


def test_aligned_coordinates_on_a_ramp():
    # Cell (i, j) holds j: with aligned=True a box [x1, x2] on stride s samples
    # cell coordinate x / s - 0.5, and the mean of a linear ramp is its centre.
    stride = 4
    fmap = torch.arange(32.0).repeat(1, 1, 32, 1)  # (1, 1, 32, 32), value = column
    boxes = np.array([[20.0, 8.0, 60.0, 40.0], [33.0, 50.0, 97.0, 70.0]])
    out = roi_align_maps(fmap, boxes_to_rois([boxes]), 7, stride)
    assert out.shape == (2, 1, 7, 7)
    centre = (boxes[:, 0] + boxes[:, 2]) / 2
    np.testing.assert_allclose(out.mean(dim=(1, 2, 3)).numpy(), centre / stride - 0.5, atol=1e-5)
    # each bin's centre: x1 + (k + 0.5) * w / 7
    bins = boxes[0, 0] + (np.arange(7) + 0.5) * (boxes[0, 2] - boxes[0, 0]) / 7
    np.testing.assert_allclose(out[0, 0, 0].numpy(), bins / stride - 0.5, atol=1e-5)


def test_box_around_bright_patch_responds_most():
    stride = 8
    fmap = torch.zeros(2, 3, 30, 40)
    fmap[1, :, 10:14, 20:24] = 5.0  # image 1, pixels x 160..192, y 80..112
    around = [160.0, 80.0, 192.0, 112.0]
    boxes = [
        np.array([around]),  # same place, but in image 0: dark
        np.array([[0.0, 0.0, 32.0, 32.0], around, [150.0, 70.0, 260.0, 200.0],
                  [200.0, 80.0, 232.0, 112.0]]),
    ]
    out = roi_align_maps(fmap, boxes_to_rois(boxes), 7, stride)
    means = out.mean(dim=(1, 2, 3)).numpy()
    assert means[0] == 0.0
    assert np.argmax(means) == 2  # the box around the patch, in the right image
    assert means[2] > 4.0 > means[3] > means[4]


def test_same_result_when_map_and_boxes_scale_together():
    # A map at stride 8 read by boxes in pixels equals the same map read at
    # stride 16 by boxes of a frame twice as large.
    g = torch.Generator().manual_seed(0)
    fmap = torch.rand(1, 4, 20, 20, generator=g)
    boxes = np.array([[10.0, 12.0, 70.0, 90.0], [-8.0, 30.0, 40.0, 150.0]])
    a = roi_align_maps(fmap, boxes_to_rois([boxes]), 7, 8)
    b = roi_align_maps(fmap, boxes_to_rois([scale_boxes(boxes, 2.0, 2.0)]), 7, 16)
    torch.testing.assert_close(a, b)


def test_empty_rois_give_empty_maps():
    out = roi_align_maps(torch.zeros(1, 5, 4, 4), boxes_to_rois([np.zeros((0, 4))]), 3, 8)
    assert out.shape == (0, 5, 3, 3)


def test_embedder_image_scale_matches_a_pre_resized_frame(mobilenet_file):
    from PIL import Image

    from deeptrack.appearance.embedder import RoIEmbedder
    from deeptrack.config import AppearanceConfig

    # A smooth frame, so that Pillow's and torch's antialiased resizes agree closely.
    yy, xx = np.mgrid[0:192, 0:256]
    img = np.stack([128 + 100 * np.sin(xx / 23.0), 128 + 100 * np.cos(yy / 17.0),
                    128 + 80 * np.sin((xx + yy) / 31.0)], axis=-1).astype(np.uint8)
    boxes = np.array([[16.0, 16.0, 112.0, 176.0], [120.0, 40.0, 240.0, 150.0]])
    half = np.asarray(Image.fromarray(img).resize((128, 96), Image.BILINEAR))
    scaled = RoIEmbedder(AppearanceConfig(weights=str(mobilenet_file), layer="stride16",
                                          image_scale=0.5))
    plain = RoIEmbedder(AppearanceConfig(weights=str(mobilenet_file), layer="stride16"))
    a = pool(scaled.roi_features(img, boxes), "flatten")
    b = pool(plain.roi_features(half, boxes * 0.5), "flatten")
    wrong = pool(plain.roi_features(half, boxes), "flatten")  # boxes not scaled
    assert np.all(np.sum(a * b, axis=1) > 0.999)  # measured 0.99998
    assert np.all(np.sum(a * wrong, axis=1) < 0.9)
