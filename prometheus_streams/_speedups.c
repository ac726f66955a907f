/* The receiver's per-message passes over a body, in C.
 *
 * strip_final_values(body) returns what exposition._FINAL_NUMBER.subn(b"\n",
 * body) returns: the body with every line's final value taken out, and how
 * many were. A final value is a run of 1 to SHAPE_VALUE_MAX value characters
 * (value_char below, as in exposition._FINAL_VALUE) that follows a space and
 * ends at a newline. The regex spends most of its time building one match
 * object and one piece of the result per line; this builds only the result
 * (docs/performance.md has the figures).
 *
 * The body is untrusted: every index stays within [0, len), and the result
 * is never longer than the body.
 *
 * The other passes live in _speedups_*.c (scan, check, parse, encode,
 * rewrite), one extension with _speedups.h between them.
 */
#include "_speedups.h"

#define SHAPE_VALUE_MAX 40 /* exposition.SHAPE_VALUE_MAX */

static unsigned char value_char[256];

static PyObject *
strip_final_values(PyObject *module, PyObject *arg)
{
    (void)module;
    const char *body;
    Py_ssize_t size;
    if (bytes_arg(arg, &body, &size) < 0) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) {
        return NULL;
    }
    char *dest = PyBytes_AS_STRING(out);
    Py_ssize_t written = 0, copied = 0, values = 0;
    const char *newline = size ? memchr(body, '\n', (size_t)size) : NULL;
    while (newline != NULL) {
        Py_ssize_t end = newline - body; /* body[end] == '\n' */
        Py_ssize_t start = end;
        /* Back over the value characters; '\n' and ' ' are not among them. */
        while (start > 0 && end - start <= SHAPE_VALUE_MAX &&
               value_char[(unsigned char)body[start - 1]]) {
            start--;
        }
        Py_ssize_t run = end - start;
        if (run >= 1 && run <= SHAPE_VALUE_MAX && start > 0 && body[start - 1] == ' ') {
            /* Keep body[copied, start - 1), drop " value"; the '\n' stays. */
            Py_ssize_t keep = start - 1 - copied;
            memcpy(dest + written, body + copied, (size_t)keep);
            written += keep;
            copied = end;
            values++;
        }
        Py_ssize_t next = end + 1;
        newline = next < size ? memchr(body + next, '\n', (size_t)(size - next)) : NULL;
    }
    memcpy(dest + written, body + copied, (size_t)(size - copied));
    written += size - copied;
    if (_PyBytes_Resize(&out, written) < 0) {
        return NULL;
    }
    return Py_BuildValue("(Nn)", out, values);
}


/* count_samples(body) is what exposition._count_samples returns: the lines
 * whose first character after blanks (space, tab) is neither '#' nor white
 * space. The regex builds a list of one match per sample line; this only
 * counts them. */
static PyObject *
count_samples(PyObject *module, PyObject *arg)
{
    (void)module;
    const char *body;
    Py_ssize_t size;
    if (bytes_arg(arg, &body, &size) < 0) return NULL;
    Py_ssize_t pos = 0, samples = 0;
    while (pos < size) {
        while (pos < size && (body[pos] == ' ' || body[pos] == '\t')) pos++;
        if (pos < size) {
            char c = body[pos];
            /* The regex's \s: blanks (skipped), newline, CR, form feed, vertical tab. */
            samples += c != '#' && c != '\n' && c != '\r' && c != '\f' && c != '\v';
        }
        const char *newline = pos < size ? memchr(body + pos, '\n', (size_t)(size - pos)) : NULL;
        if (newline == NULL) break;
        pos = newline - body + 1;
    }
    return PyLong_FromSsize_t(samples);
}

/* has_health_line(body) is False only when no line can be one of the
 * target's own up / scrape_duration_seconds / scrape_samples_scraped lines
 * that exposition.drop_health_series removes: a line that starts (optionally
 * after "#", blanks, HELP or TYPE, blanks) with one of those names followed
 * by a blank, '{', a newline or the end. True means "maybe": the regexes
 * decide. Most pages have none, and this is a memchr per line instead of a
 * regex attempt per line. */
static int
health_name_at(const char *p, const char *end)
{
    static const char *const names[] = {"up", "scrape_duration_seconds", "scrape_samples_scraped"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        size_t n = strlen(names[k]);
        if ((size_t)(end - p) >= n && memcmp(p, names[k], n) == 0) {
            const char *after = p + n;
            if (after == end || *after == ' ' || *after == '\t' || *after == '{' || *after == '\n')
                return 1;
        }
    }
    return 0;
}

static PyObject *
has_health_line(PyObject *module, PyObject *arg)
{
    (void)module;
    const char *p;
    Py_ssize_t size;
    if (bytes_arg(arg, &p, &size) < 0) return NULL;
    const char *end = p + size;
    while (p < end) {
        const char *name = p;
        if (*p == '#') {
            const char *q = p + 1;
            while (q < end && (*q == ' ' || *q == '\t')) q++;
            if (q > p + 1 && end - q >= 4 && (memcmp(q, "HELP", 4) == 0 || memcmp(q, "TYPE", 4) == 0)) {
                const char *r = q + 4;
                while (r < end && (*r == ' ' || *r == '\t')) r++;
                if (r > q + 4) name = r;
            }
        }
        if (health_name_at(name, end)) Py_RETURN_TRUE;
        const char *newline = memchr(p, '\n', (size_t)(end - p));
        if (newline == NULL) break;
        p = newline + 1;
    }
    Py_RETURN_FALSE;
}


static PyMethodDef methods[] = {
    {"strip_final_values", strip_final_values, METH_O,
     "strip_final_values(body, /)\n--\n\n"
     "The body without the value ending each line, and how many were taken out."},
    {"count_samples", count_samples, METH_O,
     "count_samples(body, /)\n--\n\n"
     "The number of sample lines: neither comments nor blank."},
    {"has_health_line", has_health_line, METH_O,
     "has_health_line(body, /)\n--\n\n"
     "False when no line can be a target's own up or scrape_* line."},
    {"check_exposition", check_exposition, METH_O,
     "check_exposition(body, /)\n--\n\n"
     "0 when the body is valid exposition text, else the first bad line's number"
     " (-1: undecided here)."},
    {"parse_samples", parse_samples, METH_O,
     "parse_samples(body, /)\n--\n\n"
     "Every sample line as (series key, value, timestamp or None); None when a line"
     " does not parse (or is left to the Python parser)."},
    {"encode_known_page", (PyCFunction)(void (*)(void))encode_known_page, METH_FASTCALL,
     "encode_known_page(body, known, at, /)\n--\n\n"
     "encode_page(known, parse_samples(body), at) without making the rows; None when"
     " either would be None."},
    {"encode_page", (PyCFunction)(void (*)(void))encode_page, METH_FASTCALL,
     "encode_page(known, rows, at, /)\n--\n\n"
     "A repeated page's TimeSeries fields in one bytes; None unless the rows' keys are"
     " known's, in order."},
    {"rewrite_known", (PyCFunction)(void (*)(void))rewrite_known, METH_FASTCALL,
     "rewrite_known(body, lines, keys, actions, /)\n--\n\n"
     "A page whose every series key is in lines, rewritten: (body, samples kept), or None."},
    {"encode_series", (PyCFunction)(void (*)(void))encode_series, METH_FASTCALL,
     "encode_series(labels, samples, /)\n--\n\n"
     "One remote-write TimeSeries field: encoded labels, then (value, timestamp ms) samples."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_speedups", "The receiver's hot loop over a body, in C.", 0,
    methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    const char *chars = "-+.0123456789eEaInNf";
    for (const char *c = chars; *c; c++) {
        value_char[(unsigned char)*c] = 1;
    }
    init_char_class();
    return PyModule_Create(&module_def);
}
