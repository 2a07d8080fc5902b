import _synth_fixtures  # noqa: F401  (skips without drkit[synth])
import numpy as np
import pytest

from drkit.errors import ConfigError
from drkit.synth.prompts import (
    CLASS_WEIGHTS,
    DEFAULT_DOMAINS,
    Prompt,
    action_space_sizes,
    format_prompt,
)

NAMES = ["T-shirt/top", "Trouser", "Bag"]


def test_template_matches_the_paper():
    assert format_prompt("photo", ["Bag", "Coat", "Bag"]) == "A photo of a Bag, Coat, and Bag"
    assert Prompt(1, (2, 0, 1)).text(NAMES, DEFAULT_DOMAINS) == "A sketch of a Bag, T-shirt/top, and Trouser"


def test_action_round_trip_and_label_is_first_class():
    p = Prompt.from_action(np.array([3, 2, 0, 1]), num_domains=4, num_classes=3)
    assert p == Prompt(3, (2, 0, 1)) and p.label == 2
    np.testing.assert_array_equal(p.action(), [3, 2, 0, 1])
    assert action_space_sizes(4, 3) == [4, 3, 3, 3]


def test_one_class_slot_names_its_class_three_times():
    assert action_space_sizes(4, 3, class_slots=1) == [4, 3]
    p = Prompt.from_action([1, 2], num_domains=4, num_classes=3, class_slots=1)
    assert p == Prompt(1, (2, 2, 2)) and p.text(NAMES, DEFAULT_DOMAINS) == "A sketch of a Bag, Bag, and Bag"
    np.testing.assert_array_equal(p.action(class_slots=1), [1, 2])
    with pytest.raises(ConfigError, match="names 2 classes"):
        Prompt(0, (1, 2, 1)).action(class_slots=1)
    for action in ([1, 2, 2, 2], [1, 3]):  # the three-slot form, a class out of range
        with pytest.raises(ConfigError, match="MultiDiscrete"):
            Prompt.from_action(action, num_domains=4, num_classes=3, class_slots=1)
    with pytest.raises(ConfigError, match="class_slots"):
        action_space_sizes(4, 3, class_slots=2)


@pytest.mark.parametrize("action", [[4, 0, 0, 0], [0, 3, 0, 0], [0, 0, 0], [-1, 0, 0, 0]])
def test_out_of_space_actions_raise(action):
    with pytest.raises(ConfigError):
        Prompt.from_action(action, num_domains=4, num_classes=3)


def test_mix_weights_first_class_and_adds_repeats():
    np.testing.assert_allclose(Prompt(0, (2, 0, 1)).mix(3), [0.2, 0.2, 0.6])
    np.testing.assert_allclose(Prompt(0, (1, 1, 2)).mix(3), [0.0, 0.8, 0.2])
    np.testing.assert_allclose(Prompt(0, (1, 1, 1)).mix(3), [0.0, 1.0, 0.0])
    assert CLASS_WEIGHTS[0] > max(CLASS_WEIGHTS[1:])


def test_prompt_checks_its_ids():
    with pytest.raises(ConfigError):
        Prompt(0, (0, 1, 5)).mix(3)
    with pytest.raises(ConfigError):
        Prompt(7, (0, 1, 2)).text(NAMES, DEFAULT_DOMAINS)
    with pytest.raises(ConfigError):
        format_prompt("photo", ["a", "b"])
