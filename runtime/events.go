package runtime

// The topics task events are published on. Shims publish most of them;
// the daemon publishes the rest.
const (
	TaskCreateEventTopic       = "/tasks/create"
	TaskStartEventTopic        = "/tasks/start"
	TaskOOMEventTopic          = "/tasks/oom"
	TaskExitEventTopic         = "/tasks/exit"
	TaskDeleteEventTopic       = "/tasks/delete"
	TaskExecAddedEventTopic    = "/tasks/exec-added"
	TaskExecStartedEventTopic  = "/tasks/exec-started"
	TaskPausedEventTopic       = "/tasks/paused"
	TaskResumedEventTopic      = "/tasks/resumed"
	TaskCheckpointedEventTopic = "/tasks/checkpointed"
	// TaskUnknownTopic is for task events of a kind not listed here.
	TaskUnknownTopic = "/tasks/?"
)
