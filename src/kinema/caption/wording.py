"""Many wordings of one caption: phrasings per prompt part, split into the wordings training may use and
the wordings only an evaluation of unseen wordings uses.

A model trained on one template ("a red circle moves to the right. the camera pans left.") learns the
template, not the words: users write "a blue square sliding downward". `caption_to_prompt` therefore
renders a caption in one of three wording sets:

    "template"  the one fixed wording (each bank's first train entry; no randomness)
    "train"     a random train wording per part: what training prompt variants use
    "held-out"  a random held-out wording per part: never in a training prompt, for evaluation only

Each `Bank` lists its train and held-out phrasings explicitly, so the split is fixed and readable; a
held-out prompt draws every part (subject pattern, motion verb, direction form, camera phrasing, order,
field labels) from held-out phrasings, so only the attribute words themselves (color, shape, "left",
"pan") are ones training used.

What can be worded depends on the caption: a structured `Subject` (color, noun, screen-space motion;
synthetic data such as the toy world) is worded in full; a VLM caption has free text only, and then
only the camera phrase, the order of description and camera, and the other fields' labels vary.

Every phrasing keeps the words that name an attribute (`MOTION_WORDS`, `CAMERA_WORDS`): a wording
changes how an attribute is said, never whether it is said. The phrasings are short enough that the
description and camera phrase of a scene with up to two subjects fit the toy text encoder's 32 token
states in every wording (tests/caption/test_caption_wording.py checks); three subjects can exceed them
outside the template.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Literal, TypeVar, get_args

if TYPE_CHECKING:
    from kinema.caption.schema import Subject

WordingSet = Literal["template", "train", "held-out"]
WORDING_SETS: tuple[str, ...] = get_args(WordingSet)

T = TypeVar("T")


@dataclass(frozen=True)
class Bank(Generic[T]):
    """Phrasings of one prompt part: `train` (the first is the template) and `held_out`, disjoint."""

    train: tuple[T, ...]
    held_out: tuple[T, ...]

    def __post_init__(self) -> None:
        if not self.train or not self.held_out:
            raise ValueError("a wording bank needs at least one train and one held-out phrasing")
        if set(self.train) & set(self.held_out):
            raise ValueError(f"train and held-out phrasings overlap: {sorted(map(str, set(self.train) & set(self.held_out)))}")

    def pick(self, wording: WordingSet, rng: random.Random) -> T:
        """The template, or a random phrasing of the chosen set (one `rng.random()` draw unless template)."""
        return self.at(wording, 0.0 if wording == "template" else rng.random())

    def at(self, wording: WordingSet, u: float) -> T:
        """The template, or the phrasing at fraction `u` in [0, 1) of the chosen set.

        Drawing `u` rather than calling `rng.choice` keeps one draw per pick whatever the bank's size:
        two captions that differ in one attribute (a counterfactual prompt) then get the same wording
        everywhere else.
        """
        if wording == "template":
            return self.train[0]
        options = self.train if wording == "train" else self.held_out
        return options[int(u * len(options))]


# ----------------------------------------------------------------------------------------- subjects

# One subject, moving ("{moves}": finite motion phrase, "{moving}": participle) or in a still image.
SUBJECT_MOVING: Bank[str] = Bank(
    train=(
        "a {color} {noun} {moves}",  # the template: "a red circle moves to the right"
        "a {color} {noun} {moving}",
        "a {noun}, {color}, {moving}",
        "a {color} {noun} that {moves}",
        "{color} {noun}, {moving}",
    ),
    held_out=("a {noun} in {color} {moving}", "one {color} {noun} {moving}", "{color} {noun} {moves}"),
)
SUBJECT_STILL_IMAGE: Bank[str] = Bank(
    train=("a {color} {noun}", "a {noun}, {color}", "{color} {noun}", "a {color} {noun} is shown"),
    held_out=("a {noun} in {color}", "one {color} {noun}", "a {color}-colored {noun}"),
)
# How several subjects are joined: (separator, last separator).
SUBJECT_JOINS: Bank[tuple[str, str]] = Bank(
    train=((", ", " and "), (" and ", " and "), ("; ", "; ")),
    held_out=((" plus ", " plus "), (", also ", ", also ")),
)

# Motion verbs as (finite, participle); directions as the forms the verb takes.
MOTION_VERBS: Bank[tuple[str, str]] = Bank(
    train=(("moves", "moving"), ("slides", "sliding"), ("goes", "going"), ("travels", "travelling"), ("heads", "heading")),
    held_out=(("drifts", "drifting"), ("glides", "gliding"), ("floats", "floating")),
)
DIRECTIONS: dict[str, Bank[str]] = {
    "right": Bank(train=("to the right", "right", "rightward"), held_out=("towards the right",)),
    "left": Bank(train=("to the left", "left", "leftward"), held_out=("towards the left",)),
    "up": Bank(train=("up", "upward"), held_out=("upwards",)),
    "down": Bank(train=("down", "downward"), held_out=("downwards",)),
}
STILL: Bank[tuple[str, str]] = Bank(
    train=(("stays still", "staying still"), ("holds still", "holding still"), ("is motionless", "motionless")),
    held_out=(("sits still", "sitting still"), ("remains stationary", "remaining stationary")),
)
SUBJECT_MOTIONS: tuple[str, ...] = (*DIRECTIONS, "still")
# Words a motion's phrasing must contain (any one of them), so a wording never hides the direction.
MOTION_WORDS: dict[str, tuple[str, ...]] = {
    "right": ("right",), "left": ("left",), "up": ("up",), "down": ("down",),
    "still": ("still", "motionless", "stationary"),
}


def motion_phrase(motion: str, wording: WordingSet, rng: random.Random) -> tuple[str, str]:
    """(finite, participle) phrasing of a screen-space motion: ("moves to the right", "moving to the right")
    for the template, e.g. ("glides upwards", "gliding upwards") held out. Two rng draws unless template,
    whatever `motion` is."""
    if motion not in MOTION_WORDS:
        raise ValueError(f"unknown subject motion {motion!r}; expected one of {', '.join(SUBJECT_MOTIONS)}")
    u_verb, u_direction = (0.0, 0.0) if wording == "template" else (rng.random(), rng.random())
    if motion == "still":
        return STILL.at(wording, u_verb)
    verb, direction = MOTION_VERBS.at(wording, u_verb), DIRECTIONS[motion].at(wording, u_direction)
    return f"{verb[0]} {direction}", f"{verb[1]} {direction}"


def _articles(text: str) -> str:
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def subject_phrase(subject: Subject, wording: WordingSet, rng: random.Random) -> str:
    """One subject in words: 'a red circle moves to the right' (template), 'a circle, red, heading left'."""
    if subject.motion is None:
        return _articles(SUBJECT_STILL_IMAGE.pick(wording, rng).format(color=subject.color, noun=subject.noun))
    pattern = SUBJECT_MOVING.pick(wording, rng)
    moves, moving = motion_phrase(subject.motion, wording, rng)
    return _articles(pattern.format(color=subject.color, noun=subject.noun, moves=moves, moving=moving))


def describe_subjects(subjects: Sequence[Subject], wording: WordingSet, rng: random.Random) -> str:
    """Every subject in words, joined: 'a red circle moves up and a blue star stays still'."""
    if not subjects:
        raise ValueError("describe_subjects needs at least one subject")
    parts = [subject_phrase(s, wording, rng) for s in subjects]
    sep, last = SUBJECT_JOINS.pick(wording, rng)
    return parts[0] if len(parts) == 1 else sep.join(parts[:-1]) + last + parts[-1]


# ------------------------------------------------------------------------------------------- camera

# Per camera-motion class: (finite, participle, noun phrase in train wordings, noun phrase held out).
CAMERA_FORMS: dict[str, tuple[str, str, str, str]] = {
    "zoom in": ("zooms in", "zooming in", "a zoom in", "an inward zoom"),
    "zoom out": ("zooms out", "zooming out", "a zoom out", "an outward zoom"),
    "pan up": ("pans up", "panning up", "an upward pan", "a pan upwards"),
    "pan down": ("pans down", "panning down", "a downward pan", "a pan downwards"),
    "pan left": ("pans left", "panning left", "a leftward pan", "a pan to the left"),
    "pan right": ("pans right", "panning right", "a rightward pan", "a pan to the right"),
    "tilt up": ("tilts up", "tilting up", "an upward tilt", "a tilt upwards"),
    "tilt down": ("tilts down", "tilting down", "a downward tilt", "a tilt downwards"),
    "tilt left": ("tilts left", "tilting left", "a leftward tilt", "a tilt to the left"),
    "tilt right": ("tilts right", "tilting right", "a rightward tilt", "a tilt to the right"),
    "around left": ("moves around to the left", "moving around to the left", "a move around to the left",
                    "an orbit around to the left"),
    "around right": ("moves around to the right", "moving around to the right", "a move around to the right",
                     "an orbit around to the right"),
    "static shot": ("holds still", "holding still", "a static camera", "a fixed, static view"),
    "handheld shot": ("sways handheld", "swaying handheld", "a handheld camera", "handheld footage"),
}
# Sentences around the forms; {finite}, {participle}, {noun}, {held_noun} as above. The template
# (`camera_phrase`) is "the camera {finite}", except "static camera" and "handheld camera".
CAMERA_SENTENCES: Bank[str] = Bank(
    train=("the camera {finite}", "camera {participle}", "{noun}", "with the camera {participle}"),
    held_out=("the camera is {participle}", "shot with {held_noun}"),
)
# Words a camera phrasing must contain: one word of every group.
CAMERA_WORDS: dict[str, tuple[tuple[str, ...], ...]] = {
    motion: ((("static", "still"),) if motion == "static shot" else (("handheld",),) if motion == "handheld shot"
             else tuple((w,) for w in motion.split(" ")))
    for motion in CAMERA_FORMS
}
_TEMPLATE_CAMERA = {"static shot": "static camera", "handheld shot": "handheld camera"}


def camera_phrase(motion: str, wording: WordingSet = "template", rng: random.Random | None = None) -> str:
    """A camera-motion class in words: 'pan left' -> 'the camera pans left' (template), 'camera panning
    left', 'a leftward pan', ... One rng draw for a non-template wording.

    Raises:
        ValueError: if `motion` is not one of the 14 camera-motion classes.
    """
    if motion not in CAMERA_FORMS:
        raise ValueError(f"unknown camera motion {motion!r}; expected one of {', '.join(CAMERA_FORMS)}")
    if wording == "template" and motion in _TEMPLATE_CAMERA:
        return _TEMPLATE_CAMERA[motion]
    finite, participle, noun, held_noun = CAMERA_FORMS[motion]
    sentence = CAMERA_SENTENCES.pick(wording, rng or random.Random(0))
    return sentence.format(finite=finite, participle=participle, noun=noun, held_noun=held_noun)


# ------------------------------------------------------------------------------ order and other fields

# How the description and the camera phrase make the prompt's head (both always come first: a short
# text encoder, 32 tokens for the toy model, must not cut them away).
HEAD_ORDERS: Bank[str] = Bank(
    train=("{subject}. {camera}", "{camera}. {subject}", "{subject}, {camera}"),
    held_out=("{camera} while {subject}", "{subject}; {camera}"),
)
# Labels of the fields after the head; the template's are the first.
FIELD_LABELS: dict[str, Bank[str]] = {
    "background": Bank(train=("background: {}", "in front of {}", "against {}"), held_out=("backdrop: {}", "the backdrop is {}")),
    "style": Bank(train=("style: {}", "{} style"), held_out=("in the style of {}", "rendered as {}")),
    "shot_type": Bank(train=("{}",), held_out=("framing: {}",)),
    "lighting": Bank(train=("lighting: {}", "{}"), held_out=("lit by {}",)),
    "atmosphere": Bank(train=("atmosphere: {}", "mood: {}"), held_out=("the mood is {}", "it feels {}")),
}
