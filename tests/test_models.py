import pytest
import torch

from drkit.errors import ConfigError
from drkit.models import create_model


@pytest.mark.parametrize("name", ["smallcnn-8", "mlp-16", "vit-mini-1", "test_resnet", "mobilenetv3_small_050",
                                  "test_vit"])
@pytest.mark.parametrize("size", [(28, 28), (8, 8)])
def test_every_family_fits_small_grayscale_images(name, size):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=1, image_size=size).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, *size))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_bad_names_and_shapes_are_config_errors():
    with pytest.raises(ConfigError, match="timm cannot create 'no_such_net'"):
        create_model("no_such_net", num_classes=10, in_chans=1, image_size=(28, 28))
    with pytest.raises(ConfigError, match="integer width"):
        create_model("smallcnn-wide", num_classes=10, in_chans=1, image_size=(28, 28))
    with pytest.raises(ConfigError, match=">= 2 classes"):
        create_model("smallcnn", num_classes=1, in_chans=1, image_size=(28, 28))
