/* The receiver's per-message pass over a body, in C.
 *
 * strip_final_values(body) returns what exposition._FINAL_NUMBER.subn(b"\n",
 * body) returns: the body with every line's final value taken out, and how
 * many were. A final value is a run of 1 to SHAPE_VALUE_MAX value characters
 * (value_char below, as in exposition._FINAL_VALUE) that follows a space and
 * ends at a newline. The regex takes 80-140 us on a 58 KB node page, most of
 * it in building one match object and one piece of the result per line; this
 * takes a tenth of that.
 *
 * The body is untrusted: every index stays within [0, len), and the result
 * is never longer than the body.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define SHAPE_VALUE_MAX 40 /* exposition.SHAPE_VALUE_MAX */

static unsigned char value_char[256];

static PyObject *
strip_final_values(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "expected bytes, not %.100s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    const char *body = PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
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

static PyMethodDef methods[] = {
    {"strip_final_values", strip_final_values, METH_O,
     "strip_final_values(body, /)\n--\n\n"
     "The body without the value ending each line, and how many were taken out."},
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
    return PyModule_Create(&module_def);
}
