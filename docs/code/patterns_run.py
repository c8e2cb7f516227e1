"""Every pattern of patterns.md on two hosts (alpha runs the built-in services, for user-info)."""

import tempfile
from importlib import resources
from pathlib import Path

from paglets.core.messages import Message
from paglets.patterns import (
    FileTransferMode,
    FileTransferRequest,
    OperationClient,
    SingleFileTransferPaglet,
    TaskClient,
)
from paglets.runtime.host import Host
from paglets.services.builtin.user_info import READ_USER_INFO, UserInfoReadRequest

from patterns_ex import ADD, RESET, AddRequest, Calculator, Counter, Job, JobState, Survey, WordCount

bundled = resources.files("paglets.config").joinpath("default_launch.toml")
with tempfile.TemporaryDirectory() as tmp, resources.as_file(bundled) as launch:
    with Host("alpha", persistence_dir=f"{tmp}/alpha", launch_config=launch) as alpha:
        with Host("beta", persistence_dir=f"{tmp}/beta", peers=[alpha.address]) as beta:
            alpha.wait_for_host("beta")
            host = alpha
            words = Path(tmp, "words.txt")
            words.write_text("one two three four")

            # --8<-- [start:task-client]
            client = TaskClient.for_paglet(host.create(Counter), Counter)
            snapshot = client.start_and_wait(WordCount(str(words)), wait_timeout=5)
            print(snapshot.status, snapshot.result)  # TaskStatus.COMPLETED Counted(words=4, host='alpha')
            # --8<-- [end:task-client]

            proxy = alpha.create(Calculator)
            # --8<-- [start:operation-client]
            calc = OperationClient(proxy)
            print(calc.call(ADD, AddRequest(5)))  # AddReply(total=5)
            calc.send_oneway(RESET)  # queued; returns at once
            # --8<-- [end:operation-client]
            print(calc.call(ADD, AddRequest(1)))

            survey = alpha.create(Survey)
            print("survey sent to", survey.send(Message("start")))
            for _ in range(200):
                answer = survey.send(Message("findings"))
                if answer["done"]:
                    break
                alpha.wait_message(survey.agent_id, timeout=0.05)  # woken when a report was handled
            print(answer)

            source = Path(tmp, "in.bin")
            source.write_bytes(b"x" * 1000)
            destination = str(Path(tmp, "out.bin"))
            # --8<-- [start:file]
            client = TaskClient.for_paglet(alpha.create(SingleFileTransferPaglet), SingleFileTransferPaglet)
            client.start(
                FileTransferRequest(str(source), destination, target_host="beta", mode=FileTransferMode.MOVE)
            )
            snapshot = client.wait(wait_timeout=30)  # the client followed the paglet to beta
            print(snapshot.result.destination.path == destination, len(snapshot.result.sha256))
            # --8<-- [end:file]
            print("moved:", not source.exists(), Path(destination).stat().st_size)

            job = beta.create(Job, JobState(home_url=alpha.address))
            job.send(Message("finish"))
            reply = alpha.get_proxy("service.user-info").send(
                READ_USER_INFO.to_message(UserInfoReadRequest(job_id="j-1"))
            )
            print([(e.title, e.text) for e in READ_USER_INFO.decode_reply(reply).entries])
