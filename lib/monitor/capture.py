"""The model's stdout and stderr into its log store: read, split, level, write.

Used by the monitor's event loop: each pipe is non-blocking and registered
with the loop's selector; a readable pipe is read in large chunks (up to
16 x 256 KiB a turn, so one chatty model cannot starve the loop) and the whole
chunk goes through the batched hot path: ``LineSplitter.feed_batch``,
``LevelTracker.codes_of``, ``LogWriter.append_batch``.
"""

import collections
import errno
import fcntl
import os
import selectors

from lib.logs import levels, records, store

F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20
READ_SIZE = 1 << 18
READS_A_TURN = 16
LAST_LINES = 20


class Stream:
    """One of the model's output pipes, with its line splitter and level memory."""

    def __init__(self, name, pipe):
        self.name = name
        self.code = store.STREAM_CODES[name]
        self.pipe = pipe
        self.fd = pipe.fileno()
        self.splitter = store.LineSplitter()
        self.tracker = records.LevelTracker()
        self.continuing_level = None  # the level of a long line being split
        os.set_blocking(self.fd, False)
        try:
            fcntl.fcntl(self.fd, F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # the system caps pipe sizes lower: the default works, just slower


class Capture:
    """Pumps one run's pipes into ``writer``; keeps its last lines for forensics.

    ``on_line(msg, now)``, if given, sees every line (the log health probe).
    ``prober``, if given (an HTTP probe), tells which lines its probes caused.
    """

    def __init__(self, writer, selector, clock, on_line=None, prober=None):
        self.writer = writer
        self.selector = selector
        self.clock = clock
        self.on_line = on_line
        self.prober = prober
        self.streams = {}
        self.last_lines = collections.deque(maxlen=LAST_LINES)

    def attach(self, popen):
        """Start capturing a new run's stdout and stderr."""
        self.last_lines.clear()
        for name, pipe in (("stdout", popen.stdout), ("stderr", popen.stderr)):
            stream = Stream(name, pipe)
            self.streams[stream.fd] = stream
            self.selector.register(stream.fd, selectors.EVENT_READ, self._reader(stream))

    def _reader(self, stream):
        return lambda now: self.read(stream, now)

    def read(self, stream, now, drain=False):
        """Read what the pipe holds (all of it with ``drain``) and store its lines."""
        chunks, eof = [], False
        while True:
            try:
                data = os.read(stream.fd, READ_SIZE)
            except BlockingIOError:
                break
            except OSError as error:
                if error.errno == errno.EINTR:
                    continue
                eof = True
                break
            if not data:
                eof = True
                break
            chunks.append(data)
            if not drain and (len(data) < READ_SIZE or len(chunks) >= READS_A_TURN):
                break
        lines, partials = stream.splitter.feed_batch(b"".join(chunks)) if chunks else ([], None)
        if eof:
            rest = stream.splitter.finish()
            if rest:
                partials = (partials or [False] * len(lines)) + [False]
                lines = lines + [rest[0][0]]
            self._close(stream)
        self._store(stream, lines, partials, now)

    def _store(self, stream, lines, partials, now):
        """Level, frame and write a batch of lines of one stream (the hot path)."""
        if not lines:
            return
        if partials is None and stream.continuing_level is None:
            codes = stream.tracker.codes_of(lines)
        else:
            codes = self._codes_with_parts(stream, lines, partials or [False] * len(lines))
        probes = None
        if self.prober is not None and self.prober.expecting_access_line(now):
            flags = [self.prober.caused_by_probe(msg, now) for msg in lines]
            probes = flags if any(flags) else None
        self.writer.append_batch(stream.code, codes, lines, partials, probes)
        if self.on_line is not None:
            for msg in lines:
                self.on_line(msg, now)
        if probes is None:
            shown = lines[-LAST_LINES:]
        else:
            shown = [msg for msg, probe in zip(lines, probes) if not probe][-LAST_LINES:]
        for msg in shown:
            self.last_lines.append(msg.decode("utf-8", "replace"))

    def _codes_with_parts(self, stream, lines, partials):
        """Every piece of a line cut at 16 KiB takes the level of its first piece."""
        codes = []
        for msg, partial in zip(lines, partials):
            if stream.continuing_level is None:
                code = stream.tracker.codes_of([msg])[0]
            else:
                code = stream.continuing_level
            stream.continuing_level = code if partial else None
            codes.append(code)
        return codes

    def _close(self, stream):
        self.selector.unregister(stream.fd)
        del self.streams[stream.fd]
        stream.pipe.close()

    def drain(self, final=True):
        """Read all that is in the pipes; if ``final`` (no writer is left), close them."""
        for stream in list(self.streams.values()):
            now = self.clock()
            self.read(stream, now, drain=True)
            if final and stream.fd in self.streams:
                rest = stream.splitter.finish()
                self._store(stream, [line for line, _ in rest], None, now)
                self._close(stream)

    def note(self, level, message):
        """A line of modeld's own in the model's log (stream ``modeld``)."""
        self.writer.append([("m", levels.CODE[level], False, message.encode())])
