"""The fast tier (`make test-fast`): what keeps slow tests out of it."""

from pathlib import Path

import pytest

from .conftest import unmarked_slow_tests


class Item:
    """What the collection check reads of a collected test."""

    def __init__(self, nodeid, fixturenames, slow):
        self.nodeid, self.fixturenames, self.slow = nodeid, fixturenames, slow
        self.path = Path("tests", nodeid.split("::")[0])

    def get_closest_marker(self, name):
        return pytest.mark.slow.mark if name == "slow" and self.slow else None


def test_a_test_using_a_slow_fixture_must_be_marked_slow():
    server, finetune = "test_labelstudio_server.py", "test_cli_finetune.py"
    items = [
        Item(f"{server}::a", ["tmp_path", "labelstudio"], slow=False),
        Item(f"{server}::b", ["tmp_path", "labelstudio"], slow=True),
        Item(f"{finetune}::c", ["corpus"], slow=False),
        Item(f"{server}::d", ["tmp_path", "sample"], slow=False),
        # another module's fixture of the same name is another fixture
        Item("test_other.py::e", ["corpus"], slow=False),
    ]
    assert unmarked_slow_tests(items) == [
        f"{server}::a (its 'labelstudio' fixture starts a Label Studio server)",
        f"{finetune}::c (its 'corpus' fixture generates a synthetic corpus to "
        "fine-tune on)",
    ]


def test_the_suite_as_collected_passes_the_check(request):
    assert unmarked_slow_tests(request.session.items) == []
