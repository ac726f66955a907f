#include "_speedups.h"


/* encode_series(labels, samples) is remote_write.protocol.python_encode_series:
 * one `timeseries` field of a remote-write WriteRequest, the labels (already
 * encoded) followed by a Sample{double value = 1, int64 timestamp = 2} for
 * each (value, timestamp ms). */

static Py_ssize_t
varint_size(uint64_t v)
{
    Py_ssize_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static char *
put_varint(char *out, uint64_t v)
{
    while (v >= 0x80) {
        *out++ = (char)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    *out++ = (char)v;
    return out;
}

PyObject *
encode_series(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "encode_series expected 2 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *labels = args[0];
    if (!PyBytes_Check(labels)) {
        PyErr_Format(PyExc_TypeError, "expected bytes, not %.100s", Py_TYPE(labels)->tp_name);
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[1], "samples must be a sequence");
    if (seq == NULL) return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    /* The samples' values and timestamps, read once: a small array on the stack
     * for the common case of a few samples. */
    double small_values[8];
    uint64_t small_stamps[8];
    double *values = small_values;
    uint64_t *stamps = small_stamps;
    PyObject *result = NULL;
    if (count > 8) {
        values = PyMem_Malloc((size_t)count * sizeof(double));
        stamps = PyMem_Malloc((size_t)count * sizeof(uint64_t));
        if (values == NULL || stamps == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    Py_ssize_t size = PyBytes_GET_SIZE(labels);
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *item = items[k];
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "a sample is a (value, timestamp) tuple");
            goto done;
        }
        values[k] = PyFloat_AsDouble(PyTuple_GET_ITEM(item, 0));
        if (values[k] == -1.0 && PyErr_Occurred()) goto done;
        long long stamp = PyLong_AsLongLong(PyTuple_GET_ITEM(item, 1));
        if (stamp == -1 && PyErr_Occurred()) goto done;
        stamps[k] = (uint64_t)stamp; /* an int64 goes on the wire as its two's complement */
        size += 2 + 10 + varint_size(stamps[k]);
    }
    result = PyBytes_FromStringAndSize(NULL, 1 + varint_size((uint64_t)size) + size);
    if (result == NULL) goto done;
    char *out = PyBytes_AS_STRING(result);
    *out++ = 0x0a;
    out = put_varint(out, (uint64_t)size);
    memcpy(out, PyBytes_AS_STRING(labels), (size_t)PyBytes_GET_SIZE(labels));
    out += PyBytes_GET_SIZE(labels);
    for (Py_ssize_t k = 0; k < count; k++) {
        *out++ = 0x12;
        *out++ = (char)(10 + varint_size(stamps[k]));
        *out++ = 0x09;
        if (PyFloat_Pack8(values[k], out, 1) < 0) {
            Py_CLEAR(result);
            goto done;
        }
        out += 8;
        *out++ = 0x10;
        out = put_varint(out, stamps[k]);
    }
done:
    if (values != small_values) PyMem_Free(values);
    if (stamps != small_stamps) PyMem_Free(stamps);
    Py_DECREF(seq);
    return result;
}

/* One TimeSeries field per sample, labels[k] (bytes) with (values[k], stamps[k]),
 * concatenated: what encode_series writes for each, in one bytes. */
static PyObject *
write_page(PyObject *const *labels, const double *values, const uint64_t *stamps, Py_ssize_t count)
{
    Py_ssize_t size = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        Py_ssize_t series = PyBytes_GET_SIZE(labels[k]) + 2 + 10 + varint_size(stamps[k]);
        size += 1 + varint_size((uint64_t)series) + series;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) return NULL;
    char *out = PyBytes_AS_STRING(result);
    for (Py_ssize_t k = 0; k < count; k++) {
        Py_ssize_t length = PyBytes_GET_SIZE(labels[k]);
        Py_ssize_t stamp_size = varint_size(stamps[k]);
        *out++ = 0x0a;
        out = put_varint(out, (uint64_t)(length + 2 + 10 + stamp_size));
        memcpy(out, PyBytes_AS_STRING(labels[k]), (size_t)length);
        out += length;
        *out++ = 0x12;
        *out++ = (char)(10 + stamp_size);
        *out++ = 0x09;
        if (PyFloat_Pack8(values[k], out, 1) < 0) {
            Py_DECREF(result);
            return NULL;
        }
        out += 8;
        *out++ = 0x10;
        out = put_varint(out, stamps[k]);
    }
    return result;
}

/* A page's series as encode_page and encode_known_page gather them: each
 * one's labels (borrowed), value and timestamp. */
typedef struct {
    double *values;
    uint64_t *stamps;
    PyObject **labels;
} Page;

static void
page_free(Page *page)
{
    PyMem_Free(page->values);
    PyMem_Free(page->stamps);
    PyMem_Free(page->labels);
    page->values = NULL;
    page->stamps = NULL;
    page->labels = NULL;
}

/* Room for `count` series: 0, or -1 with MemoryError set and nothing held. */
static int
page_alloc(Page *page, Py_ssize_t count)
{
    size_t n = (size_t)(count ? count : 1);
    page->values = PyMem_Malloc(n * sizeof(double));
    page->stamps = PyMem_Malloc(n * sizeof(uint64_t));
    page->labels = PyMem_Malloc(n * sizeof(PyObject *));
    if (page->values == NULL || page->stamps == NULL || page->labels == NULL) {
        page_free(page);
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* The checks both page encoders start with: three arguments, the last one the
 * scrape's time in ms (into *at). -1 with the exception set, else 0. */
static int
page_args(const char *name, PyObject *const *args, Py_ssize_t nargs, long long *at)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "%s expected 3 arguments, got %zd", name, nargs);
        return -1;
    }
    *at = PyLong_AsLongLong(args[2]);
    return (*at == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* encode_page(known, rows, at) is the repeated-page path of
 * outputs.rw_series.scrape_samples in one call: when the rows' series keys
 * are exactly known's keys in known's order, the concatenation of
 * encode_series(labels, ((value, at if stamp is None else stamp),)) for each
 * row, labels being known's value for the row's key; otherwise None (the
 * Python path then labels the page line by line). */
PyObject *
encode_page(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    long long at;
    if (page_args("encode_page", args, nargs, &at) < 0) return NULL;
    PyObject *known = args[0], *rows = args[1];
    if (!PyDict_Check(known) || !PyList_Check(rows)) {
        PyErr_SetString(PyExc_TypeError, "encode_page(dict, list, int)");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(rows);
    if (PyDict_GET_SIZE(known) != count) Py_RETURN_NONE;
    Page page;
    PyObject *result = NULL;
    if (page_alloc(&page, count) < 0) goto done;
    double *values = page.values;
    uint64_t *stamps = page.stamps;
    PyObject **labels = page.labels;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    for (Py_ssize_t k = 0; k < count; k++) {
        if (!PyDict_Next(known, &pos, &key, &value)) {
            result = Py_NewRef(Py_None); /* the dict changed under us: let Python decide */
            goto done;
        }
        PyObject *row = PyList_GET_ITEM(rows, k);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 3) {
            PyErr_SetString(PyExc_TypeError, "a row is a (key, value, timestamp) tuple");
            goto done;
        }
        PyObject *row_key = PyTuple_GET_ITEM(row, 0);
        if (row_key != key) {
            int same = PyObject_RichCompareBool(row_key, key, Py_EQ);
            if (same < 0) goto done;
            if (!same) {
                result = Py_NewRef(Py_None);
                goto done;
            }
        }
        if (!PyBytes_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "known labels must be bytes");
            goto done;
        }
        labels[k] = value;
        values[k] = PyFloat_AsDouble(PyTuple_GET_ITEM(row, 1));
        if (values[k] == -1.0 && PyErr_Occurred()) goto done;
        PyObject *stamp = PyTuple_GET_ITEM(row, 2);
        long long ms = at;
        if (stamp != Py_None) {
            ms = PyLong_AsLongLong(stamp);
            if (ms == -1 && PyErr_Occurred()) goto done;
        }
        stamps[k] = (uint64_t)ms; /* an int64 goes on the wire as its two's complement */
    }
    result = write_page(labels, values, stamps, count);
done:
    page_free(&page);
    return result;
}

/* encode_known_page(body, known, at) is encode_page(known, parse_samples(body), at)
 * without the rows: the page read line by line, each series key compared with
 * known's next key in place, values and timestamps kept in arrays. None when
 * parse_samples would not give rows (a line left to Python) or the keys are
 * not known's, in order; the caller then takes the long way. */
PyObject *
encode_known_page(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    long long at;
    if (page_args("encode_known_page", args, nargs, &at) < 0) return NULL;
    PyObject *arg = args[0], *known = args[1];
    if (!PyBytes_Check(arg) || !PyDict_Check(known)) {
        PyErr_SetString(PyExc_TypeError, "encode_known_page(bytes, dict, int)");
        return NULL;
    }
    Py_ssize_t count = PyDict_GET_SIZE(known);
    Page page;
    PyObject *result = NULL;
    if (page_alloc(&page, count) < 0) goto done;
    double *values = page.values;
    uint64_t *stamps = page.stamps;
    PyObject **labels = page.labels;
    const char *body = PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    Py_ssize_t pos = 0, dict_pos = 0, k = 0;
    PyObject *key, *value;
    while (pos < size) {
        const char *newline = memchr(body + pos, '\n', (size_t)(size - pos));
        Py_ssize_t end = newline ? newline - body : size;
        Py_ssize_t i = pos;
        while (i < end && is_blank(body[i])) i++;
        if (i < end && body[i] != '#') {
            Line line;
            if (!scan_sample(body + i, end - i, &line) || k == count ||
                !PyDict_Next(known, &dict_pos, &key, &value) || !PyBytes_Check(key) ||
                PyBytes_GET_SIZE(key) != line.key_end ||
                memcmp(PyBytes_AS_STRING(key), body + i, (size_t)line.key_end) != 0) {
                result = Py_NewRef(Py_None);
                goto done;
            }
            if (!PyBytes_Check(value)) {
                PyErr_SetString(PyExc_TypeError, "known labels must be bytes");
                goto done;
            }
            labels[k] = value;
            values[k] = line.value;
            /* an int64 goes on the wire as its two's complement */
            stamps[k] = (uint64_t)(line.has_stamp ? line.ms : at);
            k++;
        }
        pos = end + 1;
    }
    result = k == count ? write_page(labels, values, stamps, count) : Py_NewRef(Py_None);
done:
    page_free(&page);
    return result;
}
