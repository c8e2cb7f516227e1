"""Drive a Diary through every lifecycle step on two hosts and print what it wrote down."""

import tempfile

from paglets.core.messages import Message
from paglets.runtime.host import Host

from hooks import Diary

with tempfile.TemporaryDirectory() as tmp, Host("alpha", persistence_dir=f"{tmp}/alpha") as alpha:
    with Host("beta", persistence_dir=f"{tmp}/beta", peers=[alpha.address]) as beta:
        alpha.wait_for_host("beta")  # beta joined the mesh: its name can be used now

        diary = alpha.create(Diary, init="hello")  # on_creation, then run() on its own thread
        diary = diary.dispatch("beta")  # on_dispatching on alpha, on_arrival + run() on beta
        clone = diary.clone("alpha")  # on_cloning, on_cloned here; on_clone + run() in the clone
        diary = diary.deactivate()  # on_deactivating; the paglet is saved, its process ends
        diary = diary.activate()  # on_activation, then run()
        diary = alpha.retract(beta.address, diary.agent_id)  # on_reverting on beta, on_arrival on alpha

        print("the original:")
        for entry in diary.send(Message("diary")):
            print("  " + entry)
        print("the clone:")
        for entry in clone.send(Message("diary"))[-2:]:  # it starts with a copy of the original's
            print("  " + entry)

        diary.dispose()  # on_disposing, then the paglet is gone
        print("last words: " + alpha.get_property("diary-last-words"))
