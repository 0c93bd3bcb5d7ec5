"""What every front-end builds definitions from, and the runtime reads back.

Tasks and their options, limits, backoff, a task's context, schedules, topics and payload
matching, the outbox `wp.emit` fills, and the hook a flow body's calls are recorded
through. It sits below the front-ends (dag/, machine/, chains/) and the runtime, and
imports none of them.
"""
