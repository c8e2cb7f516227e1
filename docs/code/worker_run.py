"""Two hosts in this process; a PrimeCounter on alpha clones itself to both and adds up their counts."""

import tempfile

from paglets.core.messages import Message
from paglets.runtime.host import Host

from worker import PrimeCounter

with tempfile.TemporaryDirectory() as tmp, Host("alpha", persistence_dir=f"{tmp}/alpha") as alpha:
    with Host("beta", persistence_dir=f"{tmp}/beta", peers=[alpha.address]) as beta:
        alpha.wait_for_host("beta")

        boss = alpha.create(PrimeCounter)
        answer = boss.send(Message("count", {"below": 100_000}))
        for part in answer["parts"]:
            print(f"{part['host']} counted {part['count']} primes in [{part['lo']}, {part['hi']})")
        print(f"{answer['primes']} primes below {answer['below']}")
        print("paglets left:", len(alpha.list_agents()) + len(beta.list_agents()))  # the boss only
