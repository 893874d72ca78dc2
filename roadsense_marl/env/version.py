"""The env's contract version: bumped whenever observations, actions, rewards or the radio's
random stream change, so that results and models name the contract they were made under.

- v0: the first release (sensor noise drawn per delivered copy of a message).
- v1: sensor noise drawn once per transmitted message (every receiver of a frame gets the same
  bytes); one array core with thin views.
"""

from __future__ import annotations

ENV_VERSION = 1
#: PettingZoo registry id of the multi-agent env (``pettingzoo.make("parallel", ENV_ID)``).
ENV_ID = f"roadsense/convoy-v{ENV_VERSION}"
#: Gymnasium id of the single-ego view.
GYM_ENV_ID = f"RoadSense-Convoy-v{ENV_VERSION}"
#: ``metadata["name"]`` of the parallel env.
ENV_NAME = f"roadsense_convoy_v{ENV_VERSION}"
#: Ids that still resolve, with a warning, to the current version.
DEPRECATED_IDS = {"roadsense/convoy-v0": ENV_ID, "RoadSense-Convoy-v0": GYM_ENV_ID}
