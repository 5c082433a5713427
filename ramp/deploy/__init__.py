"""Serving: the Ray Serve application, the wire protocol and the robot-side client."""
