/* stub: being written */
typedef int levr_stub_stream;
