#include "_speedups.h"


/* parse_samples(body) is remote_write.text.python_parse_page for a page that
 * parses: a list of (series key, value, timestamp or None), the same objects
 * with the same values. For anything else (a bad line, or a number too long
 * to decide here) it returns None and the Python parser, which is the
 * reference, says what is wrong. */

/* One label block from s[i] == '{'; the index after its '}', or -1 when malformed. */
Py_ssize_t
skip_label_block(const char *s, Py_ssize_t i, Py_ssize_t n)
{
    i++;
    for (;;) {
        while (i < n && is_blank(s[i])) i++;
        if (i < n && s[i] == '}') return i + 1;
        if (i >= n || !label_start(s[i])) return -1;
        while (i < n && label_char(s[i])) i++;
        while (i < n && is_blank(s[i])) i++;
        if (i >= n || s[i] != '=') return -1;
        i++;
        while (i < n && is_blank(s[i])) i++;
        if (i >= n || s[i] != '"') return -1;
        i++;
        while (i < n && s[i] != '"') {
            if (s[i] == '\\') {
                if (i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\' || s[i + 1] == 'n')) {
                    i += 2;
                    continue;
                }
                return -1;
            }
            i++;
        }
        if (i >= n) return -1;
        i++;
        while (i < n && is_blank(s[i])) i++;
        if (i < n && s[i] == ',') {
            i++;
            continue;
        }
        if (i < n && s[i] == '}') return i + 1;
        return -1;
    }
}

/* 1 and *out set when s[0, n) is [+-]?[0-9]+ within int64 (leading zeros
 * and all), else 0. */
int
parse_int64(const char *s, Py_ssize_t n, long long *out)
{
    Py_ssize_t i = (n > 0 && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
    int negative = n > 0 && s[0] == '-';
    if (i == n) return 0;
    uint64_t v = 0;
    const uint64_t limit = (uint64_t)INT64_MAX + (uint64_t)negative;
    for (; i < n; i++) {
        if (!is_digit(s[i])) return 0;
        if (v > limit / 10) return 0; /* v * 10 alone is beyond the limit */
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > limit) return 0;
    }
    *out = negative ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(long long)v) : (long long)v;
    return 1;
}
/* 1 and *line set, 0 leave it to Python. */
int
scan_sample(const char *s, Py_ssize_t n, Line *line)
{
    Py_ssize_t i = 0;
    if (!name_start(s[0])) return 0;
    while (i < n && name_char(s[i])) i++;
    Py_ssize_t key_end = i;
    while (i < n && is_blank(s[i])) i++;
    if (i < n && s[i] == '{') {
        i = skip_label_block(s, i, n);
        if (i < 0) return 0;
        key_end = i;
        while (i < n && is_blank(s[i])) i++;
    }
    Py_ssize_t start = i;
    while (i < n && !is_blank(s[i])) i++;
    /* UNDECIDED: well-formed, but too long for check_float to say it is in range */
    if (check_float(s + start, i - start) == 0) return 0;
    double value;
    if (!fast_double(s + start, i - start, &value)) {
        /* The bytes object's buffer ends in a NUL, so the number always ends. */
        char *end = NULL;
        value = PyOS_string_to_double(s + start, &end, NULL);
        if (value == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        if (end != s + i) return 0;
        if (Py_IS_INFINITY(value)) {
            char first = (s[start] == '+' || s[start] == '-') ? s[start + 1] : s[start];
            if (first != 'i' && first != 'I') return 0; /* beyond float64: Go refuses it */
        }
    }
    while (i < n && is_blank(s[i])) i++;
    line->has_stamp = 0;
    if (i < n) {
        start = i;
        while (i < n && !is_blank(s[i])) i++;
        if (!parse_int64(s + start, i - start, &line->ms)) return 0;
        while (i < n && is_blank(s[i])) i++;
        if (i != n) return 0;
        line->has_stamp = 1;
    }
    line->key_end = key_end;
    line->value = value;
    return 1;
}

/* One sample line s[0, n) appended to list: 1 done, 0 leave it to Python, -2 error set. */
static int
parse_sample(PyObject *list, const char *s, Py_ssize_t n)
{
    Line line;
    if (!scan_sample(s, n, &line)) return 0;
    PyObject *stamp = line.has_stamp ? PyLong_FromLongLong(line.ms) : Py_NewRef(Py_None);
    if (stamp == NULL) return -2;
    PyObject *key = PyBytes_FromStringAndSize(s, line.key_end);
    PyObject *number = key ? PyFloat_FromDouble(line.value) : NULL;
    PyObject *sample = number ? PyTuple_New(3) : NULL;
    if (sample == NULL) {
        Py_XDECREF(key);
        Py_XDECREF(number);
        Py_DECREF(stamp);
        return -2;
    }
    PyTuple_SET_ITEM(sample, 0, key);
    PyTuple_SET_ITEM(sample, 1, number);
    PyTuple_SET_ITEM(sample, 2, stamp);
    int failed = PyList_Append(list, sample);
    Py_DECREF(sample);
    return failed ? -2 : 1;
}

PyObject *
parse_samples(PyObject *module, PyObject *arg)
{
    (void)module;
    const char *body;
    Py_ssize_t size;
    if (bytes_arg(arg, &body, &size) < 0) return NULL;
    PyObject *list = PyList_New(0);
    if (list == NULL) return NULL;
    Py_ssize_t pos = 0;
    while (pos < size) {
        const char *newline = memchr(body + pos, '\n', (size_t)(size - pos));
        Py_ssize_t end = newline ? newline - body : size;
        Py_ssize_t i = pos;
        while (i < end && is_blank(body[i])) i++;
        if (i < end && body[i] != '#') {
            int ok = parse_sample(list, body + i, end - i);
            if (ok != 1) {
                Py_DECREF(list);
                if (ok == -2) return NULL;
                Py_RETURN_NONE;
            }
        }
        pos = end + 1;
    }
    return list;
}
