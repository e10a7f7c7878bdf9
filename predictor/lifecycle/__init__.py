"""The model lifecycle of a process: which verified model serves (registry), how the pod's agent hands models over
(handover), how a serving process follows it (follower), and how a pod reports its workers (readiness, podhealth).
Nothing here imports Flask: each module takes a registry or settings."""
