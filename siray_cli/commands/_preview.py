"""What `run` prints when its task has succeeded: a line of data per output (its file, else its
URL), each image followed by its preview on a terminal that draws images (siray_cli/preview.py,
on stderr: stdout keeps only the lines), each line a link there."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from siray_cli.commands._context import AppContext
    from siray_cli.domain import Task
    from siray_cli.preview import Previewer


def show_outputs(context: AppContext, task: Task, files: list[Path], mode: str) -> None:
    """The outputs of `task` (saved as `files`, or not saved), previewed as the `preview`
    setting `mode` says. Without files, the images are fetched into a temporary directory for
    their previews only, and only when previews will be shown."""
    output = context.output
    protocol = output.preview_protocol(mode)
    lines = [str(path) for path in files] or task.urls
    if protocol is None:
        if not output.json_mode:
            output.data_lines(lines)
        return
    from siray_cli.domain import TaskKind

    with contextlib.ExitStack() as stack:
        if files:
            images: dict[str, Path | str] = {
                str(path): path
                for path, item in zip(files, task.outputs, strict=False)
                if item.media is TaskKind.IMAGE
            }
        else:
            try:
                images = _fetched(context, task, stack)
            except KeyboardInterrupt:  # no previews, then: the lines still come
                images = {}
        drawing = _Drawing(context, protocol)
        for line in lines:
            if not output.json_mode:
                target = Path(line).resolve().as_uri() if files else line
                output.data_link(line, target)
            image = images.get(line)
            if image is not None:
                drawing.show(line, image)


def _fetched(context: AppContext, task: Task, stack: contextlib.ExitStack) -> dict[str, Path | str]:
    """The task's images in a temporary directory, removed when `stack` closes."""
    import tempfile

    from siray_cli.preview import MAX_BYTES
    from siray_cli.services.outputs import Downloads

    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="siray-preview-")))
    with Downloads(context.session) as downloads:
        return downloads.images_for_preview(task, directory, max_bytes=MAX_BYTES)


class _Drawing:
    """Previews one after another; a failure skips that image with a line, Ctrl-C the rest
    (the run is over: its lines are still printed)."""

    def __init__(self, context: AppContext, protocol: str) -> None:
        self.output = context.output
        self.protocol = protocol
        self.previewer: Previewer | None = None
        self.stopped = False

    def show(self, line: str, image: Path | str) -> None:
        from siray_cli.output import middle_cut

        if self.stopped:
            return
        name = middle_cut(line, 60)
        if isinstance(image, str):  # why it could not be fetched
            self.output.info(f"no preview of {name}: {image}")
            return
        from siray_cli.preview import Previewer, PreviewSkipped

        try:
            if self.previewer is None:
                self.previewer = Previewer(self._console(), self.protocol)
            self.previewer.show(image)
        except PreviewSkipped as skipped:
            self.output.info(f"no preview of {name}: {skipped}")
        except ImportError:
            self.stopped = True
            self.output.info("no previews: they need the preview extra (siray-cli[preview])")
        except KeyboardInterrupt:
            self.stopped = True

    def _console(self) -> Console:
        """stderr's console; off a terminal (preview = always) one that draws anyway."""
        output = self.output
        if output.stderr_is_tty:
            return output.console()
        from rich.console import Console

        return Console(file=output.stderr, force_terminal=True, highlight=False)
