from vaebench_example.my_vae import MyVAE

from vae_zoo import list_models
from vae_zoo.testing import check_model


def test_my_vae_conforms():
    check_model(MyVAE)


def test_my_vae_is_registered():
    assert "my_vae" in list_models()
