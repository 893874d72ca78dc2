"""roadsense-marl: multi-agent RL for V2V cooperative collision avoidance on SUMO."""

__version__ = "0.1.0"
