"""Inbox rules on the EWS replay responder: the GetInboxRules and UpdateInboxRules operations in the shapes
Microsoft documents ("GetInboxRules operation", "UpdateInboxRules operation": the answer is the
``m:...Response`` element itself, with ``ResponseClass``, no ``m:ResponseMessages``).

Rules are kept per mailbox as their ``t:Rule`` elements, each given a ``t:RuleId``; a SetRuleOperation
replaces a rule whole, a DeleteRuleOperation removes it (an unknown id: ErrorInboxRulesValidationError
with RuleOperationErrors, as Exchange answers).
"""

from __future__ import annotations

import base64
import uuid
import xml.etree.ElementTree as ET
from typing import Optional

S = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
_BOOLEANS = {"IsEnabled", "IsNotSupported", "IsInError", "StopProcessingRules", "Delete", "MarkAsRead",
             "PermanentDelete"}


class InboxRules:
    def __init__(self) -> None:
        #: mailbox address -> its rules, as t:Rule elements
        self.rules: dict[str, list[ET.Element]] = {}

    def of(self, address: str) -> list[dict[str, object]]:
        """A mailbox's rules as a test reads them: display name, enabled, forward-as-attachment addresses."""
        return [{"id": r.findtext(f"{{{T}}}RuleId"), "name": r.findtext(f"{{{T}}}DisplayName"),
                 "enabled": r.findtext(f"{{{T}}}IsEnabled") in ("true", "1"),  # xs:boolean
                 "forward_as_attachment": [a.text for a in r.iterfind(
                     f"{{{T}}}Actions/{{{T}}}ForwardAsAttachmentToRecipients//{{{T}}}EmailAddress")]}
                for r in self.rules.get(address.lower(), [])]

    def add(self, address: str, xml: str) -> None:
        """A rule made by the user in Outlook (``xml``: a t:Rule element without RuleId)."""
        rule = ET.fromstring(f'<t:Rule xmlns:t="{T}">{xml}</t:Rule>')
        self._set_id(rule)
        self.rules.setdefault(address.lower(), []).append(rule)

    @staticmethod
    def _canonical(rule: ET.Element) -> ET.Element:
        """Booleans as Exchange writes them back ("true"/"false"), whatever xs:boolean form came in."""
        for el in rule.iter():
            if el.tag.split("}")[1] in _BOOLEANS and el.text in ("0", "1"):
                el.text = "true" if el.text == "1" else "false"
        return rule

    @staticmethod
    def _set_id(rule: ET.Element) -> None:
        for old in rule.findall(f"{{{T}}}RuleId"):
            rule.remove(old)
        rid = ET.Element(f"{{{T}}}RuleId")
        rid.text = base64.b64encode(uuid.uuid4().bytes[:8]).decode()
        rule.insert(0, rid)

    def answer(self, name: str, op: ET.Element, impersonated: Optional[str]) -> bytes:
        if name == "GetInboxRules":
            address = (op.findtext(f"{{{M}}}MailboxSmtpAddress") or impersonated or "").lower()
            rules = "".join(ET.tostring(r, encoding="unicode") for r in self.rules.get(address, []))
            return _response(name, "<m:OutlookRuleBlobExists>false</m:OutlookRuleBlobExists>"
                                   f"<m:InboxRules>{rules}</m:InboxRules>")
        address = (impersonated or "").lower()
        rules = self.rules.setdefault(address, [])
        for operation in op.find(f"{{{M}}}Operations") or []:
            kind = operation.tag.split("}")[1]
            if kind == "CreateRuleOperation":
                rule = operation.find(f"{{{T}}}Rule")
                assert rule is not None
                self._set_id(rule)
                rules.append(self._canonical(rule))
                continue
            rule_id = operation.findtext(f".//{{{T}}}RuleId")
            index = next((n for n, r in enumerate(rules) if r.findtext(f"{{{T}}}RuleId") == rule_id), None)
            if index is None:
                return _response(name, "<m:RuleOperationErrors><t:RuleOperationError><t:OperationIndex>0"
                                       "</t:OperationIndex><t:ValidationErrors><t:Error><t:FieldURI>RuleId"
                                       "</t:FieldURI><t:ErrorCode>RuleNotFound</t:ErrorCode><t:ErrorMessage>The rule "
                                       "was not found.</t:ErrorMessage></t:Error></t:ValidationErrors>"
                                       "</t:RuleOperationError></m:RuleOperationErrors>",
                                 error="ErrorInboxRulesValidationError")
            if kind == "SetRuleOperation":
                rules[index] = self._canonical(operation.find(f"{{{T}}}Rule"))  # type: ignore[arg-type]
            else:
                del rules[index]
        return _response(name, "")


def _response(name: str, inner: str, error: Optional[str] = None) -> bytes:
    status = (f'ResponseClass="Error"><m:MessageText>Validation error.</m:MessageText><m:ResponseCode>{error}'
              "</m:ResponseCode>") if error else 'ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{S}"><s:Header>'
        f'<h:ServerVersionInfo MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" '
        f'Version="V2017_07_11" xmlns:h="{T}"/></s:Header><s:Body>'
        f'<m:{name}Response xmlns:m="{M}" xmlns:t="{T}" {status}{inner}</m:{name}Response></s:Body></s:Envelope>'
    ).encode()
