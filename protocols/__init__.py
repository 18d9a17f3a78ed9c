"""Protocol machines and the test servers built on the reactor."""
