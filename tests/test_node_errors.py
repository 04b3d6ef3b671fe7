"""node_errors: library errors become ValueErrors naming node and input; everything else passes through."""
from __future__ import annotations

import pytest

from soundstage.media import MediaError
from soundstage.models.common.checkpoint import CheckpointError
from soundstage.nodes.errors import input_error, node_errors


@pytest.mark.parametrize("error", [MediaError("bad clip"), CheckpointError("bad weights")])
def test_library_errors_name_node_and_input(error):
    with pytest.raises(ValueError, match=r"^Load X: input 'file': bad") as info:
        with node_errors("Load X", "file"):
            raise error
    assert info.value.__cause__ is error and type(info.value) is ValueError


def test_extra_types_are_caught_and_others_pass_through():
    with pytest.raises(ValueError, match=r"^N: input 'ckpt': \[Errno 2\]"):
        with node_errors("N", "ckpt", OSError):
            raise FileNotFoundError(2, "No such file or directory")
    with pytest.raises(FileNotFoundError):
        with node_errors("N", "ckpt"):
            raise FileNotFoundError(2, "No such file or directory")
    with pytest.raises(KeyError):
        with node_errors("N", "ckpt", OSError):
            raise KeyError("a bug stays a bug")


def test_without_an_input_the_message_names_the_node_only():
    with pytest.raises(ValueError, match=r"^N: missing package$"):
        with node_errors("N", None, RuntimeError):
            raise RuntimeError("missing package")
    assert str(input_error("N", "speech", "no voice")) == "N: input 'speech': no voice"
