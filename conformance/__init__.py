"""A pytest conformance suite for the Coze Plus Agent (智能体) API."""

__version__ = "0.1.0"
