"""What a caller's channel brings into Stasis: the DID and the SIP Call-ID."""

import base64

from hypothesis import given
from hypothesis import strategies as st

from ivr.engine import call_args


def test_the_dialplan_passes_the_did_and_the_call_id_in_base64():
    encoded = base64.b64encode(b'a84b4c76e66710@pc33.atlanta.example.com').decode()
    assert call_args(["18883737888", encoded]) == ("18883737888", "a84b4c76e66710@pc33.atlanta.example.com")


def test_a_dialplan_without_the_call_id_leaves_it_to_be_read():
    assert call_args(["18883737888"]) == ("18883737888", "")
    assert call_args(["18883737888", ""]) == ("18883737888", "")
    assert call_args([]) == ("", "")


def test_an_argument_that_is_not_base64_is_not_taken_for_a_call_id():
    assert call_args(["18883737888", "not base64!"]) == ("18883737888", "")
    assert call_args(["18883737888", base64.b64encode(b"\xff\xfe").decode()]) == ("18883737888", "")


@given(st.text(alphabet=st.characters(codec="ascii", exclude_categories=("Cc",)), min_size=1, max_size=200))
def test_any_call_id_comes_back_as_sent(call_id):
    assert call_args(["18883737888", base64.b64encode(call_id.encode()).decode()])[1] == call_id
