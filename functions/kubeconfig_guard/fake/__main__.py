"""``python -m kubeconfig_guard.fake serve --world FILE``: the fake ACK's command line."""

from .cli import fake_app

fake_app(prog_name="kcguard fake")
