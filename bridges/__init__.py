"""The network: VMC over OSC, plain OSC, WebSocket stream and browser viewer, controls."""
