"""A host with the bundled launch config (the built-in services), and an Inspector that uses them."""

import tempfile
from importlib import resources

from paglets.core.messages import Message
from paglets.runtime.host import Host
from paglets.services.builtin.user_info import READ_USER_INFO, UserInfoReadRequest

from inspector import Inspector

bundled = resources.files("paglets.config").joinpath("default_launch.toml")
with tempfile.TemporaryDirectory() as tmp, resources.as_file(bundled) as launch:
    with Host("alpha", persistence_dir=f"{tmp}/alpha", launch_config=launch) as alpha:
        inspector = alpha.create(Inspector)
        print("volumes:", inspector.send(Message("disk")))
        print("told:", inspector.send(Message("tell", {"home": alpha.address, "job": "job-1"})))
        reply = alpha.get_proxy("service.user-info").send(
            READ_USER_INFO.to_message(UserInfoReadRequest(job_id="job-1"))
        )
        read = READ_USER_INFO.decode_reply(reply)
        print([(entry.title, entry.text) for entry in read.entries])
