"""The Singularity/Apptainer executor: every node of a job runs the app in a container."""

from .executor import SingularityExecutor

__all__ = ["SingularityExecutor"]
