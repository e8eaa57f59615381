"""Redaction: a secret is masked in every form a command can carry it, and a spec read back
(``***`` in it) is unmasked from the same model's stored spec, or refused."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lib.core import redact
from lib.errors import ValidationError

# Issue 10 #25: each of these showed the secret in clear.
FORMS = [
    lambda s: ["sh", "-c", "serve --api-key %s --port 8000" % s],
    lambda s: ["serve", "--api-key %s" % s],
    lambda s: ["serve", "--api-key=%s" % s],
    lambda s: ["serve", "--api-key", s],
    lambda s: ["serve", "--api-key", "-" + s],
    lambda s: ["sh", "-c", "serve --api-key=%s" % s],
    lambda s: ["sh", "-c", "HF_TOKEN=%s serve" % s],
    lambda s: ["sh", "-c", "serve --api-key '%s and more words'" % s],
    lambda s: ["sh", "-c", "serve --api-key", s],
]
FORM_IDS = [
    "sh -c",
    "one argument",
    "equals",
    "two arguments",
    "dash value",
    "sh -c equals",
    "sh -c assignment",
    "sh -c quoted",
    "flag ends an argument",
]
SECRETS = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.+/"),
    min_size=8,
    max_size=40,
).filter(lambda s: not s.startswith("-"))


@pytest.mark.parametrize("form", FORMS, ids=FORM_IDS)
def test_a_secret_is_masked_in_every_form(form):
    argv = form("hf_SECRETVALUE")
    shown = redact.redact_argv(argv)
    assert "SECRETVALUE" not in " ".join(shown), shown
    assert len(shown) == len(argv) and redact.MASK in " ".join(shown)


@given(secret=SECRETS, form=st.sampled_from(FORMS))
def test_no_secret_survives_and_the_mask_round_trips(secret, form):
    argv = form(secret)
    shown = redact.redact_argv(argv)
    assert secret not in " ".join(shown)
    spec = {"env": {}, "command": shown}
    assert redact.unmask_spec(spec, {"env": {}, "command": argv})["command"] == argv


def test_ordinary_arguments_are_left_alone():
    argv = ["vllm", "serve", "/models/x", "--port", "8000", "sh -c 'echo hi'", "A=1"]
    assert redact.redact_argv(argv) == argv


# -- unmasking (issue 10 #18) -------------------------------------------------------


def test_masks_of_the_same_model_take_the_stored_secrets_back():
    stored = {"env": {"HF_TOKEN": "hf_real", "A": "1"}, "command": ["serve", "--api-key", "k1"]}
    shown = redact.redact_spec(stored)
    assert shown["env"]["HF_TOKEN"] == "***" and shown["command"][-1] == "***"
    assert redact.unmask_spec(shown, stored) == stored
    changed = dict(shown, env={"HF_TOKEN": "hf_new"})
    assert redact.unmask_spec(changed, stored)["env"] == {"HF_TOKEN": "hf_new"}


@pytest.mark.parametrize(
    "spec, field",
    [
        ({"env": {"HF_TOKEN": "***"}, "command": ["serve"]}, "env.HF_TOKEN"),
        ({"env": {}, "command": ["serve", "--api-key", "***"]}, "command[2]"),
        ({"env": {}, "command": ["sh", "-c", "serve --token=***"]}, "command[2]"),
    ],
)
def test_a_mask_with_nothing_to_take_back_is_refused(spec, field):
    with pytest.raises(ValidationError) as caught:
        redact.unmask_spec(spec, None)
    assert caught.value.details["field"] == field
    other = {"env": {"OTHER_KEY": "x"}, "command": ["other", "--flag", "--api-key", "k"]}
    with pytest.raises(ValidationError):
        redact.unmask_spec(spec, other)


def test_a_literal_mask_in_an_ordinary_place_is_kept():
    spec = {"env": {"GREETING": "***"}, "command": ["echo", "***"]}
    assert redact.unmask_spec(spec, None) == spec
