"""From the records of a run to what its users read: the verdict and the exit code
(``verdict``), the suite's provenance (``provenance``), the certification reporter that
writes results.json and the terminal summary (``certification``), the expected-failures
baseline (``baseline``), the HTML summary (``html``) and the Allure labels (``allure``)."""
