"""The fast tier (`make test-fast`): what keeps slow tests out of it."""

import pytest

from .conftest import unmarked_slow_tests


class Item:
    """What the collection check reads of a collected test."""

    def __init__(self, nodeid, fixturenames, slow):
        self.nodeid, self.fixturenames, self.slow = nodeid, fixturenames, slow

    def get_closest_marker(self, name):
        return pytest.mark.slow.mark if name == "slow" and self.slow else None


def test_a_test_using_a_slow_fixture_must_be_marked_slow():
    items = [
        Item("t.py::a", ["tmp_path", "labelstudio"], slow=False),
        Item("t.py::b", ["tmp_path", "labelstudio"], slow=True),
        Item("t.py::c", ["corpus"], slow=False),
        Item("t.py::d", ["tmp_path", "sample"], slow=False),
    ]
    assert unmarked_slow_tests(items) == [
        "t.py::a (its 'labelstudio' fixture starts a Label Studio server)",
        "t.py::c (its 'corpus' fixture generates a synthetic corpus to fine-tune on)",
    ]


def test_the_suite_as_collected_passes_the_check(request):
    assert unmarked_slow_tests(request.session.items) == []
