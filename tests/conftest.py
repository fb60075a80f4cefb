"""Hypothesis profiles.  'ci' (the default) is derandomized and bounded so runs are
stable and fast; 'dev' searches harder: HYPOTHESIS_PROFILE=dev python -m pytest."""
import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
