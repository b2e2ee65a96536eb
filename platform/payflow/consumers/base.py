"""What a consumer handler module imports: the decoded event, the handler protocols and the
worker's entry point. The machinery behind them: `decode` (record -> event or rejection), `apply`
(the transaction and the retry/park decisions), `deferral` (records waiting for their shard),
`processing` (a poll's records, synchronously) and `worker` (the Kafka loop)."""

from payflow.consumers.apply import BatchHandler, Handler
from payflow.consumers.decode import Event
from payflow.consumers.worker import worker_main

__all__ = ["BatchHandler", "Event", "Handler", "worker_main"]
