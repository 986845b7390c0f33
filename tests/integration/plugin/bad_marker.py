import pytest


@pytest.mark.limit_memory("lots")
def test_bad():
    pass
