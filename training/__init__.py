"""CrackDesk training: data, architectures, staged transfer learning, ONNX export. Entry point:
`python -m training` / `crackdesk train` (training.cli.main). The app never imports this package;
it runs it as a child process and reads its JSON events (docs/training-events.md)."""
