"""What routed mode costs Redis per subscribed user channel: memory, and the time to
subscribe. A scratch redis-server on a free loopback port; CHANNELS channels on one
connection (one node holding that many users), in SUBSCRIBE commands of 1,000.

    .venv/bin/python bench/experiments/channel_memory.py 100000
"""

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from redis import asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support.redis import RedisProcess


async def main(channels: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisProcess(Path(tmp))
        redis.start()
        try:
            admin = aioredis.Redis.from_url(redis.url)
            sub_client = aioredis.Redis.from_url(redis.url)
            before = (await admin.info("memory"))["used_memory"]
            pubsub = sub_client.pubsub()
            names = [f"socketio#user:{i:08d}" for i in range(channels)]
            t0 = time.perf_counter()
            for i in range(0, channels, 1000):
                await pubsub.subscribe(*names[i : i + 1000])
            confirmed = 0
            while confirmed < channels:
                message = await pubsub.get_message(timeout=5)
                if message is None:
                    break
                confirmed += message["type"] == "subscribe"
            took = time.perf_counter() - t0
            after = (await admin.info("memory"))["used_memory"]
            print(
                f"{channels} channels: {(after - before) / channels:.0f} bytes each in Redis; "
                f"subscribed and confirmed in {took:.2f} s ({took / channels * 1e6:.1f} us each)"
            )
            await pubsub.aclose()
            await sub_client.aclose()
            await admin.aclose()
        finally:
            redis.stop()


asyncio.run(main(int(sys.argv[1])))
