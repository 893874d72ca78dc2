"""The env's contract version: bumped whenever observations, actions, rewards or the radio's
random stream change, so that results and models name the contract they were made under.

- v0: the first release (sensor noise drawn per delivered copy of a message).
- v1: sensor noise drawn once per transmitted message (every receiver of a frame gets the same
  bytes); one array core with thin views.
- v2: time constants in seconds (hazard ``onset_window_s`` / ``override_delay_s``, episode length
  ``max_time_s``, the warm-up allowance, the braking signal's half-life), converted with the step
  length; beacons at their own times inside a step, the sender's state interpolated between the
  two SUMO states around it (message ages reflect beacon period and latency, not the step length);
  a radio configuration in which no message can ever be fresh is an error; the shared radio
  channel (airtime, CSMA/CA collisions, channel busy ratio) on in the ``measured`` and
  ``degraded`` profiles; the reward by construction (rates per second, collider-only crash
  penalty, no charge for required braking, progress the leader allows, ``brake_shortfall``); the
  hold-speed override outlives the hazard vehicle's crash; ``agents`` / ``penetration_rate``.
- v3: transmit-time jitter on the shared channel (``channel.tx_jitter_ms``, 5 ms in the
  ``measured`` and ``degraded`` profiles): each beacon leaves a uniform 0..5 ms after its grid
  time, so two vehicles whose beacon phases coincide no longer collide on every beacon; the
  reward's ``ignore_warning`` rate -5 -> -20 per second (a warning must get a reaction that matters).
- v4: the observation's ego vector gains the track of the nearest visible peer ahead (distance,
  closing speed, required deceleration: three columns, 9 in all), which averages the ~3 m GPS
  noise of single beacons so that a slow creep into a car held ahead is visible to a memoryless
  policy (issue 12).
"""

from __future__ import annotations

ENV_VERSION = 4
#: PettingZoo registry id of the multi-agent env (``pettingzoo.make("parallel", ENV_ID)``).
ENV_ID = f"roadsense/convoy-v{ENV_VERSION}"
#: Gymnasium id of the single-ego view.
GYM_ENV_ID = f"RoadSense-Convoy-v{ENV_VERSION}"
#: ``metadata["name"]`` of the parallel env.
ENV_NAME = f"roadsense_convoy_v{ENV_VERSION}"
#: Ids that still resolve, with a warning, to the current version.
DEPRECATED_IDS = {
    "roadsense/convoy-v0": ENV_ID,
    "RoadSense-Convoy-v0": GYM_ENV_ID,
    "roadsense/convoy-v1": ENV_ID,
    "RoadSense-Convoy-v1": GYM_ENV_ID,
    "roadsense/convoy-v2": ENV_ID,
    "RoadSense-Convoy-v2": GYM_ENV_ID,
    "roadsense/convoy-v3": ENV_ID,
    "RoadSense-Convoy-v3": GYM_ENV_ID,
}
