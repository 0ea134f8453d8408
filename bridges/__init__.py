"""The network: VMC over OSC, plain OSC, WebSocket stream and browser viewer, controls.

Public API (import from the modules; this package imports nothing, to keep ``--help`` fast):

- ``opendance.bridges.hub``: ``BridgeHub`` (owns every sink and the control listener:
  ``send(frame)``, ``publish_status(dict)``, ``close()``), ``BridgeHub.from_args(args,
  on_control=...)``, ``add_bridge_arguments(parser)``, the ``FrameSink`` protocol.
- ``opendance.bridges.vmc`` (VMC protocol), ``osc_out`` (plain OSC), ``ws_server``
  (WebSocket + viewer), ``control`` (OSC / WebSocket control parsing and the OSC
  listener), ``coords`` (SMPL -> Unity / Unreal), ``humanoid`` (SMPL -> HumanBodyBones),
  ``wire_format`` (WebSocket frame encodings), ``playback`` (a motion file as frames).

Protocol details for users: ``docs/bridges.md``.
"""
