"""The pytest plugin's own suite (run by ../live.py under pymem, with
--pymem-limit-memory "2 MB"): which tests fail, and the lines and bytes
their failures name, are known."""
import threading

import pytest

MiB = 1024 * 1024
kept = []


@pytest.mark.limit_memory("10 MB")
def test_under_limits():
    data = bytes(1 * MiB)
    assert len(data) == MiB


@pytest.mark.limit_memory("1 MB")
def test_peak_over():
    data = bytes(5 * MiB)  # MARK:PEAK
    del data


@pytest.mark.limit_memory("100 MB")
@pytest.mark.limit_leaks("1 MB")
def test_leak_over():
    kept.append(bytes(3 * MiB))  # MARK:LEAK


@pytest.mark.limit_memory("100 MB")
@pytest.mark.limit_leaks("1 MB")
def test_thread_leak_over():
    t = threading.Thread(target=lambda: kept.append(bytes(2 * MiB)))  # MARK:THREAD
    t.start()
    t.join()


@pytest.mark.parametrize("size", [
    pytest.param(100_000, marks=pytest.mark.limit_memory("1 MB"), id="small-under-1MB"),
    pytest.param(10_000_000, marks=pytest.mark.limit_memory("1 MB"), id="big-under-1MB"),
    pytest.param(10_000_000, marks=pytest.mark.limit_memory("20 MB"), id="big-under-20MB"),
])
def test_param_limits(size):
    assert len(bytes(size)) == size


def test_default_limit_applies():
    assert len(bytes(4 * MiB)) == 4 * MiB


@pytest.mark.limit_memory("10 MB")
def test_marker_overrides_default():
    assert len(bytes(4 * MiB)) == 4 * MiB


@pytest.mark.limit_memory("100 MB")
@pytest.mark.limit_leaks("1 MB")
def test_freed_in_test():
    data = [bytes(MiB) for _ in range(8)]
    assert len(data) == 8
    del data


@pytest.fixture
def made_in_setup():
    return [bytes(MiB) for _ in range(3)]


@pytest.mark.limit_leaks("1 MB")
def test_frees_what_setup_made(made_in_setup):
    made_in_setup.clear()
